from edgevision.cli import main

raise SystemExit(main(["portal"]))
