"""The README's picture of ``rnnkit explore``: the Text view of a trained run in headless
Chromium, a passage coloured by one cell and a character hovered (gates, top-5, connectivity).

    python benchmarks/explore_screenshot.py runs/shakespeare --out docs/explore-text.png
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from rnnkit.explore.analysis import ExploreRun
from rnnkit.explore.server import create_app

PASSAGE = ("ROMEO:\nI will not stay here, for the night is cold;\n"
           "And she, my love, is gone before the day.\n\n"
           "JULIET:\nThen stay, good Romeo, and speak again.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/explore-text.png"))
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--quantity", default="activation")
    parser.add_argument("--layer", default="1")
    parser.add_argument("--unit", default="0")
    parser.add_argument("--hover", type=int, default=40, help="the character hovered")
    args = parser.parse_args(argv)
    server = uvicorn.Server(uvicorn.Config(create_app([ExploreRun.load(args.run)]),
                                           host="127.0.0.1", port=args.port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1250, "height": 720})
        page.goto(f"http://127.0.0.1:{args.port}/")
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#quantity", args.quantity)
        page.select_option("#layer", args.layer)
        page.fill("#unit", args.unit)
        page.fill("#text-input", PASSAGE)
        page.wait_for_function("(n) => document.querySelectorAll('#tokens .tok').length === n",
                               arg=len(PASSAGE))
        page.locator("#tokens .tok").nth(args.hover).hover()
        page.wait_for_selector("#hover-gates")
        page.wait_for_timeout(300)
        page.screenshot(path=str(args.out))
        browser.close()
    server.should_exit = True
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
