// Bundle each widgets/<name>/index.ts (+ style.css) into one self-contained ESM file
// src/mechscope/widgets/static/<name>.{js,css}, which the Python package ships.
//
//   node build.mjs          write the bundles
//   node build.mjs --check  build in memory and fail if the committed bundles differ
//
// Output is deterministic (fixed esbuild version, no sourcemaps, no absolute paths, no
// license comments), so a rebuild on any machine is byte-identical to the committed files.
import { existsSync, readdirSync, readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "src", "mechscope", "widgets", "static");
const check = process.argv.includes("--check");

// A widget is any top-level folder with an index.ts (shared/ holds helpers only).
const widgets = readdirSync(here, { withFileTypes: true })
  .filter((d) => d.isDirectory() && d.name !== "node_modules" && existsSync(join(here, d.name, "index.ts")))
  .map((d) => d.name)
  .sort();

const common = {
  absWorkingDir: here,
  bundle: true,
  minify: true,
  write: false,
  sourcemap: false,
  legalComments: "none", // license banners can carry URLs; the bundle must hold none
  charset: "utf8",
  logLevel: "warning",
};

// Rules the repo promises about every shipped bundle (see DESIGN.md, Widgets).
function lint(name, text) {
  const problems = [];
  if (text.includes("innerHTML")) problems.push("contains innerHTML (render user text with textContent)");
  const url = text.match(/https?:\/\/[^\s"'`)]+/);
  if (url) problems.push(`contains a URL (${url[0]}); widgets must not touch the network`);
  if (/\bimport\s*\(|from\s*["'][^."']/.test(text) && name.endsWith(".js")) {
    problems.push("imports a module at run time; bundle everything into one file");
  }
  return problems.map((p) => `${name}: ${p}`);
}

async function buildOne(name) {
  const js = await esbuild.build({
    ...common,
    entryPoints: [`${name}/index.ts`],
    format: "esm",
    target: "es2020",
    platform: "browser",
    outfile: `${name}.js`,
  });
  const files = { [`${name}.js`]: js.outputFiles[0].text };
  if (existsSync(join(here, name, "style.css"))) {
    const css = await esbuild.build({ ...common, entryPoints: [`${name}/style.css`], outfile: `${name}.css` });
    files[`${name}.css`] = css.outputFiles[0].text;
  }
  return files;
}

const problems = [];
const stale = [];
for (const name of widgets) {
  const files = await buildOne(name);
  for (const [file, text] of Object.entries(files)) {
    problems.push(...lint(file, text));
    const target = join(outDir, file);
    if (check) {
      const committed = existsSync(target) ? readFileSync(target, "utf8") : null;
      if (committed !== text) stale.push(relative(join(here, ".."), target));
    } else {
      mkdirSync(outDir, { recursive: true });
      writeFileSync(target, text);
      console.log(`wrote ${relative(join(here, ".."), target)} (${Buffer.byteLength(text)} bytes)`);
    }
  }
}

if (problems.length) {
  console.error(`bundle rules violated:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
if (stale.length) {
  console.error(
    `committed widget bundles are out of date with widgets/ sources:\n  ${stale.join("\n  ")}\n` +
      "Fix: cd widgets && npm ci && npm run build, then commit src/mechscope/widgets/static/.",
  );
  process.exit(1);
}
if (check) console.log(`widget bundles up to date (${widgets.join(", ")})`);
