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

// A widget is any top-level folder with an index.ts (shared/ holds helpers only; html_manager/
// is the exported page's widget manager, built at the end of this file).
const NOT_WIDGETS = new Set(["node_modules", "html_manager"]);
const widgets = readdirSync(here, { withFileTypes: true })
  .filter((d) => d.isDirectory() && !NOT_WIDGETS.has(d.name) && existsSync(join(here, d.name, "index.ts")))
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

// `mechscope export` inlines html_manager/ into each page: ipywidgets' base manager + controls
// and anywidget's front end, one IIFE (and its CSS) in src/mechscope/publish/static/.
// anywidget's npm file is an AMD module (`define(["@jupyter-widgets/base"], factory)`, what
// its CDN build loads through require.js); the plugin turns that call into an ES export.
const anywidgetAsEsm = {
  name: "anywidget-as-esm",
  setup(build) {
    build.onLoad({ filter: /[\\/]anywidget[\\/]dist[\\/]index\.js$/ }, (args) => {
      const text = readFileSync(args.path, "utf8");
      const amd = 'define(["@jupyter-widgets/base"], widget_default);';
      if (!text.includes(amd)) throw new Error(`${args.path}: expected ${amd} (anywidget changed its build)`);
      return { contents: text.replace(amd, "export default widget_default;"), loader: "js" };
    });
  },
};

async function buildManager() {
  const dir = join(here, "..", "src", "mechscope", "publish", "static");
  const js = await esbuild.build({
    ...common,
    entryPoints: ["html_manager/index.ts"],
    format: "iife",
    target: "es2020",
    platform: "browser",
    outfile: "widget_manager.js",
    define: { "process.env.NODE_ENV": '"production"' },
    plugins: [anywidgetAsEsm],
  });
  const css = await esbuild.build({ ...common, entryPoints: ["html_manager/style.css"], outfile: "widget_manager.css" });
  const files = [
    [join(dir, "widget_manager.js"), js.outputFiles[0].text],
    [join(dir, "widget_manager.css"), css.outputFiles[0].text],
  ];
  // Third-party code (jquery, lumino) breaks the widget rules above by design; what the page
  // needs: the files inline into <script>/<style> and import nothing remote. (The browser test
  // tests/browser/test_export.py asserts the page makes no request at all.)
  for (const [file, text] of files) {
    if (/<\/(script|style)/i.test(text)) problems.push(`${file}: contains a closing </script> or </style>`);
    if (/@import\s+url\(\s*["']?https?:/.test(text)) problems.push(`${file}: imports a remote stylesheet`);
  }
  return files;
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
const outputs = [];
for (const name of widgets) {
  const files = await buildOne(name);
  for (const [file, text] of Object.entries(files)) {
    problems.push(...lint(file, text));
    outputs.push([join(outDir, file), text]);
  }
}
outputs.push(...(await buildManager()));
for (const [target, text] of outputs) {
  if (check) {
    const committed = existsSync(target) ? readFileSync(target, "utf8") : null;
    if (committed !== text) stale.push(relative(join(here, ".."), target));
  } else {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text);
    console.log(`wrote ${relative(join(here, ".."), target)} (${Buffer.byteLength(text)} bytes)`);
  }
}

if (problems.length) {
  console.error(`bundle rules violated:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
if (stale.length) {
  console.error(
    `committed widget bundles are out of date with widgets/ sources:\n  ${stale.join("\n  ")}\n` +
      "Fix: cd widgets && npm ci && npm run build, then commit src/mechscope/{widgets,publish}/static/.",
  );
  process.exit(1);
}
if (check) console.log(`widget bundles up to date (${widgets.join(", ")})`);
