"""A real, isolated JupyterLab server for the browser test tier.

`LabServer` starts ``python -m jupyter lab`` (or ``jupyter notebook``, Notebook 7, with
``app="notebook"``; the interpreter running the tests, so the kernel and the lab
extensions are the venv's) on 127.0.0.1 with
a random token, a port chosen by the OS, and every *writable* Jupyter location
(config, runtime, user data, IPython dir, lab settings, lab workspaces) inside
one temporary directory. The read-only system data path (``sys.prefix``'s
``share/jupyter``) is left alone so that the lab extensions installed in the
environment (anywidget, ``@jupyter-widgets/jupyterlab-manager``) are found.

Everything that could reach the internet from the server or the page is off:
news feed, update check, PyPI extension manager; the lab user settings also
turn off news fetching on the page side.

Use it as a context manager, or call `start()` / `stop()`; `stop()` is
idempotent and also kills, by pid, any kernel processes that still refer to
this server's private runtime directory.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

LOOPBACK = "127.0.0.1"

# Lab user settings written into the isolated settings dir.
# Keys are "<plugin id with ':' replaced by '/'>" + ".jupyterlab-settings".
USER_SETTINGS: dict[str, dict] = {
    # no news, no update check, no "would you like news?" toast
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    # attach every cell to the DOM (lab 4 windowing may otherwise detach or
    # content-skip cells outside the viewport)
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # never query PyPI from the extension manager
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}


# Per app: the flags that switch off its network features and expose window.jupyterapp.
APPS: dict[str, list[str]] = {
    "lab": [
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp for the tests
        "--LabApp.collaborative=False",
    ],
    # Notebook 7 has no news feed, update check or extension manager to switch off.
    "notebook": ["--JupyterNotebookApp.expose_app_in_browser=True"],
}


class LabServerError(RuntimeError):
    pass


class LabServer:
    def __init__(
        self,
        root_dir: Path,
        work_dir: Path,
        *,
        python: str = sys.executable,
        extra_env: dict[str, str] | None = None,
        pythonpath: list[Path] | None = None,
        startup_timeout: float = 60.0,
        app: str = "lab",
        user_settings: dict[str, dict] | None = None,
    ) -> None:
        if app not in APPS:
            raise ValueError(f"app={app!r}; expected one of {sorted(APPS)}")
        self.app = app  # "lab" (JupyterLab) or "notebook" (Notebook 7)
        # lab user settings on top of USER_SETTINGS, e.g. a theme
        self.user_settings = {**USER_SETTINGS, **(user_settings or {})}
        self.root_dir = Path(root_dir)
        self.work_dir = Path(work_dir)
        self.python = python
        self.extra_env = dict(extra_env or {})
        self.pythonpath = [Path(p) for p in (pythonpath or [])]
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(24)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path = self.work_dir / f"jupyter-{app}.log"
        self._log_file = None
        d = self.work_dir
        self.dirs = {
            "JUPYTER_CONFIG_DIR": d / "config",
            "JUPYTER_DATA_DIR": d / "data",
            "JUPYTER_RUNTIME_DIR": d / "runtime",
            "IPYTHONDIR": d / "ipython",
            "JUPYTERLAB_SETTINGS_DIR": d / "lab-user-settings",
            "JUPYTERLAB_WORKSPACES_DIR": d / "lab-workspaces",
        }

    # ------------------------------------------------------------------ urls
    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LabServerError("server not started")
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str, **query: str) -> str:
        """URL on this server with the token appended (``path`` starts with /)."""
        sep = "&" if "?" in path else "?"
        extra = "".join(f"&{k}={v}" if v != "" else f"&{k}" for k, v in query.items())
        return f"{self.base_url}{path}{sep}token={self.token}{extra}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0):
        req = urllib.request.Request(
            f"{self.base_url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback only)
            body = resp.read()
        return json.loads(body) if body else None

    # ------------------------------------------------------------------- env
    def _environ(self) -> dict[str, str]:
        env = dict(os.environ)
        # Drop inherited Jupyter locations that would leak the user's setup in.
        for key in (
            "JUPYTER_PATH",
            "JUPYTER_CONFIG_PATH",
            "JUPYTER_PREFER_ENV_PATH",
            "JUPYTERLAB_DIR",
            "JUPYTER_TOKEN",
            "JUPYTER_PORT",
        ):
            env.pop(key, None)
        env.update({k: str(v) for k, v in self.dirs.items()})
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        # The kernel must never reach the network either: fail loudly instead.
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        env["PYTHONUNBUFFERED"] = "1"
        if self.pythonpath:
            parts = [str(p) for p in self.pythonpath]
            if env.get("PYTHONPATH"):
                parts.append(env["PYTHONPATH"])
            env["PYTHONPATH"] = os.pathsep.join(parts)
        env.update(self.extra_env)
        return env

    def _prepare_dirs(self) -> None:
        for p in self.dirs.values():
            p.mkdir(parents=True, exist_ok=True)
        settings = self.dirs["JUPYTERLAB_SETTINGS_DIR"]
        for name, values in self.user_settings.items():
            f = settings / f"{name}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values, indent=2))
        # Server config in the private config dir (highest priority): no language
        # server scan (it shells out to npm and probes ~20 servers on every start).
        (self.dirs["JUPYTER_CONFIG_DIR"] / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_lsp": False}}}, indent=2)
        )

    def notebook_url(self, name: str) -> str:
        """URL (with token) that opens notebook ``name`` (relative to the root) in this app."""
        # `reset` drops any saved lab workspace layout; the workspace dir is fresh anyway.
        if self.app == "notebook":
            return self.url(f"/notebooks/{quote(name)}")
        return self.url(f"/lab/tree/{quote(name)}", reset="")

    def command(self) -> list[str]:
        app_flags = APPS[self.app]
        return [
            self.python,
            "-m",
            "jupyter",
            self.app,
            "--no-browser",
            "--ServerApp.open_browser=False",
            f"--ServerApp.ip={LOOPBACK}",
            "--ServerApp.port=0",  # the OS picks a free port; read back from the info file
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.password=",
            "--ServerApp.allow_remote_access=False",
            "--ServerApp.terminals_enabled=False",
            "--ServerApp.shutdown_no_activity_timeout=900",  # belt and braces: dies if orphaned
            "--MappingKernelManager.cull_idle_timeout=0",
            *app_flags,
        ] + (
            ["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        )

    # ------------------------------------------------------------- lifecycle
    def start(self) -> LabServer:
        if self.proc is not None:
            return self
        self._prepare_dirs()
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.root_dir,
            env=self._environ(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: we can signal it as a whole
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        info_file = self.dirs["JUPYTER_RUNTIME_DIR"] / f"jpserver-{self.proc.pid}.json"
        last_err: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabServerError(
                    f"jupyter {self.app} exited early with code {self.proc.returncode}\n"
                    + self.log_tail()
                )
            if self.port is None and info_file.exists():
                try:
                    info = json.loads(info_file.read_text())
                    self.port = int(info["port"])
                except (ValueError, KeyError) as e:  # partially written; retry
                    last_err = e
            if self.port is not None:
                try:
                    status = self.api("/api/status", timeout=2)
                    if isinstance(status, dict) and "started" in status:
                        # the lab page handler must answer too (extension loaded)
                        self.api(
                            "/lab/api/settings/@jupyterlab/notebook-extension:tracker", timeout=5
                        )
                        return
                except (urllib.error.URLError, OSError, ValueError) as e:
                    last_err = e
            time.sleep(0.2)
        raise LabServerError(
            f"jupyter {self.app} was not ready after {self.startup_timeout:.0f}s "
            f"(last error: {last_err!r})\n" + self.log_tail()
        )

    def _kernel_pids(self) -> list[int]:
        """Pids of processes whose command line names our private runtime dir."""
        marker = str(self.dirs["JUPYTER_RUNTIME_DIR"])
        pids = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmd and int(entry.name) != os.getpid():
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None and self.port is not None:
            # Politely shut kernels down first (they live in their own sessions).
            try:
                for k in self.api("/api/kernels", timeout=2) or []:
                    self.api(f"/api/kernels/{k['id']}", method="DELETE", timeout=10)
            except Exception:  # noqa: BLE001 (best effort; we kill below anyway)
                pass
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        # Any kernel left behind (server killed before it could clean up).
        for pid in self._kernel_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------- diagnostics
    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        # never print the token
        text = "\n".join(lines[-n:]).replace(self.token, "<token>")
        return f"--- last {min(n, len(lines))} lines of {self.log_path} ---\n{text}"


def labextensions_in_page(page_config: dict) -> list[str]:
    """Names of the federated (prebuilt) lab extensions announced to the page."""
    return sorted(e.get("name", "?") for e in page_config.get("federated_extensions", []))
