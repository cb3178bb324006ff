"""`make book-check`: read the built book as a reader would, in headless Chromium.

For every built page: no machine path (the project root's absolute path, /tmp/, /home/, /work/) in
any text file of the build; at 1400 and 1024 px, the document is not wider than the viewport and no
table, figure or code block is wider than the content column (or scrolls inside it); no result-table
cell wraps beyond two lines at 1400 px. One screenshot per chapter page goes to
``book/_build/screenshots/``. The browser is driven over the DevTools protocol (tornado's websocket
client, already a Jupyter dependency); Chromium comes from Debian's packages (``--install``).

    python -m mace_core.book.check --html book/_build/html [--install] [--no-browser]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mace_core.errors import MaceError

WIDTHS = (1400, 1024)
HEIGHT = 900
MAX_LINES = 2
LOAD_TIMEOUT_S = 20     # a page of the book loads in well under a second here; more is a hung page
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_TEXT_SUFFIXES = {".html", ".js", ".json", ".txt", ".ipynb", ".css", ".svg", ".md"}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def machine_paths(root: Path = PROJECT_ROOT) -> list[str]:
    """Strings that only an absolute path of the building machine would contain."""
    return sorted({str(root.resolve()) + "/", "/tmp/", "/home/", "/work/", tempfile.gettempdir().rstrip("/") + "/"})


def find_path_leaks(html_dir: Path, needles: list[str] | None = None) -> list[str]:
    """``page: needle`` for every text file of the build that names a machine path. Vendored
    third-party bundles (``_static`` files not written by this project) are not scanned."""
    needles = needles or machine_paths()
    found = []
    for path in sorted(html_dir.rglob("*")):
        rel = path.relative_to(html_dir)
        if not path.is_file() or path.suffix not in _TEXT_SUFFIXES:
            continue
        if rel.parts[0] == "_static" and rel.name != "mace.css":
            continue
        text = path.read_text(errors="replace")
        for needle in needles:
            if needle in text:
                i = text.index(needle)
                snippet = re.sub(r"\s+", " ", text[max(0, i - 40):i + 60])
                found.append(f"{rel}: {needle!r} in …{snippet}…")
    return found


def pages(html_dir: Path) -> list[Path]:
    skip = {"search.html", "genindex.html", "py-modindex.html"}
    return [p for p in sorted(html_dir.rglob("*.html"))
            if p.relative_to(html_dir).parts[0] not in ("_static", "_sources", "_images") and p.name not in skip]


# ---------------------------------------------------------------------------------------------
# Chromium

def find_browser() -> str | None:
    explicit = os.environ.get("MACE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def install_browser() -> str | None:
    """``apt-get install -y chromium`` (Debian's package) when running as root; None when that fails."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return None
    for cmd in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0 and cmd[1] == "install":
            break
    return find_browser()


# What one page measures: document width, elements wider than the content column (or scrolling in
# it), and result-table cells whose text takes more than MAX_LINES lines.
_MEASURE = r"""
(() => {
  const doc = document.documentElement;
  const out = {scroll: doc.scrollWidth, viewport: doc.clientWidth, wide: [], wraps: []};
  const main = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const edge = main.getBoundingClientRect().right + 1;
  const name = el => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
      ? '.' + el.className.trim().split(/\s+/).slice(0, 2).join('.') : '');
  for (const el of main.querySelectorAll('table, pre, img, svg, figure, .cell_output, .output, div.highlight, .pst-scrollable-table-container')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0) continue;
    const ox = getComputedStyle(el).overflowX;
    const scrolls = el.scrollWidth > el.clientWidth + 1 && ['auto', 'scroll', 'hidden', 'clip'].includes(ox);
    if (r.right > edge || scrolls) out.wide.push(`${name(el)} (${Math.round(Math.max(r.width, el.scrollWidth))} px)`);
  }
  const result = document.querySelectorAll('table.mace-table td, table.mace-table th, .mace-overview table td');
  for (const c of result) {
    const cs = getComputedStyle(c);
    const lh = parseFloat(cs.lineHeight) || 1.2 * parseFloat(cs.fontSize);
    const range = document.createRange();
    range.selectNodeContents(c);
    const lines = Math.round(range.getBoundingClientRect().height / lh);
    if (lines > %d) out.wraps.push(`"${c.textContent.trim().slice(0, 40)}" (${lines} lines)`);
  }
  return JSON.stringify(out);
})()
""" % MAX_LINES


# resolves once the page's web fonts are loaded, MathJax (where the page loads it) has typeset, and two
# frames have been laid out since; at most 1 s (a font that cannot load offline, or a headless tab that
# draws no frame, made some loads wait the whole bound: 48 s instead of 6 s for one check in CI)
_SETTLED = """Promise.race([
  new Promise(done => setTimeout(done, 1000)),
  Promise.all([document.fonts && document.fonts.ready,
               window.MathJax && window.MathJax.startup && window.MathJax.startup.promise])
    .then(() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))),
]).then(() => true)"""


@dataclass
class Browser:
    """A headless Chromium with one tab, driven over the DevTools protocol."""

    exe: str
    proc: subprocess.Popen | None = None
    ws: object = None
    _id: int = 0
    profile: tempfile.TemporaryDirectory = field(default_factory=tempfile.TemporaryDirectory)

    def __enter__(self):
        from tornado.ioloop import IOLoop

        self.loop = IOLoop()
        args = [self.exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={self.profile.name}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port_file = Path(self.profile.name) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.time() > deadline:
                raise MaceError(f"{self.exe} did not start: {self.proc.stderr.read()[-500:] if self.proc.stderr else ''}",
                                "check the Chromium install (apt-get install -y chromium)")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        target = json.loads(urllib.request.urlopen(req, timeout=10).read())
        self.loop.run_sync(lambda: self._connect(target["webSocketDebuggerUrl"]))
        self.call("Page.enable")
        return self

    async def _connect(self, url: str):
        from tornado.websocket import websocket_connect

        self.ws = await websocket_connect(url, max_message_size=512 * 2 ** 20)

    async def _call(self, method: str, params: dict):
        self._id += 1
        my = self._id
        await self.ws.write_message(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = await self.ws.read_message()
            if msg is None:
                raise MaceError("Chromium closed the connection", "rerun the book check")
            data = json.loads(msg)
            if data.get("id") == my:
                if "error" in data:
                    raise MaceError(f"DevTools {method}: {data['error']}", "rerun the book check")
                return data.get("result", {})

    def call(self, method: str, **params):
        return self.loop.run_sync(lambda: self._call(method, params), timeout=60)

    def open(self, url: str, width: int, height: int = HEIGHT) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        # Mark the page on screen, then wait for an unmarked document that has loaded: until the new
        # document commits, the old one answers (and reads "complete", at the same URL when a page is
        # opened again for its second width; a measurement taken then ran on a document being replaced,
        # seen once in CI). The URL is not compared: a page may redirect (the book's index.html, a
        # JupyterLab URL dropping its token), and the marker already tells the documents apart.
        self.call("Runtime.evaluate", expression="window.__maceOld = true", returnByValue=True)
        nav = self.call("Page.navigate", url=url)
        new_document = bool(nav.get("loaderId"))   # none for a same-document (fragment) navigation
        deadline = time.time() + LOAD_TIMEOUT_S
        while True:
            try:
                state = self.call("Runtime.evaluate", returnByValue=True,
                                  expression="[document.readyState, window.__maceOld === true]")
            except MaceError as exc:   # the evaluation raced the navigation: the old page vanished mid-call
                if "navigated" not in str(exc) and "context" not in str(exc).lower():
                    raise
                state = {}
            ready, old = (state.get("result", {}).get("value") or ["", True])
            if ready == "complete" and not (old and new_document):
                break
            if time.time() > deadline:
                raise MaceError(f"the browser did not load {url} within {LOAD_TIMEOUT_S} s (state: {ready or 'none'})",
                                "rerun the book check; if it repeats, open the page in Chromium and look for a "
                                "script that never finishes")
            time.sleep(0.05)
        # fonts and late layout (MathJax typesetting): until they are done, not a fixed pause
        try:
            self.call("Runtime.evaluate", expression=_SETTLED, awaitPromise=True, returnByValue=True)
        except MaceError as exc:
            # the page moved on while settling (a late navigation, e.g. a redirect page): the evaluation
            # lost its page; pause as the check did before it waited for readiness
            if "navigated" not in str(exc) and "context" not in str(exc).lower():
                raise
            time.sleep(0.3)

    def measure(self) -> dict:
        res = self.call("Runtime.evaluate", expression=_MEASURE, returnByValue=True)
        if "value" not in res.get("result", {}):   # the script threw: say what, not a KeyError
            detail = res.get("exceptionDetails", {})
            text = detail.get("exception", {}).get("description") or detail.get("text") or res
            raise MaceError(f"the page measurement failed in the browser: {str(text)[:300]}",
                            "rerun the book check; if it repeats, the page's HTML lacks the book theme's main column")
        return json.loads(res["result"]["value"])

    def screenshot(self, path: Path, width: int, max_height: int = 6000) -> None:
        height = self.call("Runtime.evaluate", expression="document.documentElement.scrollHeight",
                           returnByValue=True)["result"]["value"]
        height = int(min(max(height, HEIGHT), max_height))
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        time.sleep(0.3)
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(base64.b64decode(shot["data"]))
        tmp.replace(path)

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.profile.cleanup()


def _is_chapter(rel: Path) -> bool:
    """Pages that get a screenshot: the overview, each chapter intro and each summary."""
    return rel.parts[0] == "chapters" or rel.stem in ("summary", "overview", "index")


def browser_problems(html_dir: Path, exe: str, shots: Path | None) -> list[str]:
    problems = []
    with Browser(exe) as browser:
        for page in pages(html_dir):
            rel = page.relative_to(html_dir)
            for width in WIDTHS:
                browser.open(page.resolve().as_uri(), width)
                m = browser.measure()
                if m["scroll"] > m["viewport"]:
                    problems.append(f"{rel} @ {width} px: document is {m['scroll']} px wide (viewport {m['viewport']})")
                problems += [f"{rel} @ {width} px: wider than the content column: {w}" for w in m["wide"]]
                if width == WIDTHS[0]:
                    problems += [f"{rel} @ {width} px: cell wraps beyond {MAX_LINES} lines: {w}" for w in m["wraps"]]
                    if shots is not None and _is_chapter(rel):
                        browser.screenshot(shots / (str(rel.with_suffix("")).replace("/", "__") + ".png"), width)
    return problems


def check(html_dir: str | Path, browser: bool = True, install: bool = False, shots: str | Path | None = None) -> list[str]:
    """All problems found in the built book (empty: it passes). Raises when the browser is asked for
    but cannot be found or installed."""
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        raise MaceError(f"{html_dir} holds no built book (no index.html)", "build it first: make book")
    problems = find_path_leaks(html_dir)
    if browser:
        exe = find_browser() or (install_browser() if install else None)
        if exe is None:
            raise MaceError("no Chromium found for the browser checks",
                            "apt-get install -y chromium (or pass --install / set MACE_CHROMIUM), or --no-browser")
        problems += browser_problems(html_dir, exe, Path(shots) if shots else html_dir.parent / "screenshots")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mace_core.book.check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", default="book/_build/html", help="the built book (default: book/_build/html)")
    ap.add_argument("--install", action="store_true", help="apt-get install chromium when it is missing")
    ap.add_argument("--no-browser", action="store_true", help="only the machine-path scan")
    ap.add_argument("--screenshots", default=None, help="folder for the screenshots (default: <html>/../screenshots)")
    args = ap.parse_args(argv)
    try:
        problems = check(args.html, browser=not args.no_browser, install=args.install, shots=args.screenshots)
    except MaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    n = len(pages(Path(args.html)))
    print(f"book check: {n} pages, {len(problems)} problem(s)" + ("" if args.no_browser else
          f"; screenshots in {args.screenshots or Path(args.html).parent.joinpath('screenshots')}"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
