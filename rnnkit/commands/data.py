"""``rnnkit data``: the public datasets the README uses, downloaded and checked by SHA-256.

``rnnkit data list`` says what each is (size, upstream address, licence); ``rnnkit data get
NAME ...`` downloads it once into the cache (``<cache>/data``), verifies its SHA-256 and copies
it into ``--out`` (default ``data/``) beside a ``NAME.LICENSE.txt`` note, printing each path.
``$RNNKIT_DATA_MIRROR`` points the downloads at a mirror (see :mod:`rnnkit.data.download`).
"""

from __future__ import annotations

import json

from rnnkit.commands.helptext import examples

DEFAULT_OUT = "data"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="download the datasets the README uses (checked by SHA-256)",
        description="Download the public datasets the README's commands use into the cache "
                    "(checked by SHA-256, fetched once) and copy them where you want them.",
        epilog=examples("rnnkit data list",
                        "rnnkit data get tinyshakespeare",
                        "rnnkit data get airpassengers sunspots --out data"))
    commands = parser.add_subparsers(dest="data_command", metavar="COMMAND")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)

    listing = commands.add_parser(
        "list", help="the datasets rnnkit data get knows",
        description="The datasets rnnkit data get knows: name, what it is, size, upstream "
                    "address, licence, and whether the cache holds it already.",
        epilog=examples("rnnkit data list", "rnnkit data list --json"))
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=run_list)

    get = commands.add_parser(
        "get", help="download datasets into the cache and copy them to --out",
        description="Download each dataset from its public upstream into the cache "
                    "($RNNKIT_CACHE, else $XDG_CACHE_HOME/rnnkit, else ~/.cache/rnnkit, under "
                    "data/), verify its SHA-256, and copy it to --out with a NAME.LICENSE.txt "
                    "note; a file already in the cache is verified and not fetched again. "
                    "$RNNKIT_DATA_MIRROR=URL/ fetches the files by name from a mirror instead.",
        epilog=examples("rnnkit data get tinyshakespeare",
                        "rnnkit data get nsmc --out ~/datasets"))
    get.add_argument("names", nargs="+", metavar="NAME", help="datasets (rnnkit data list)")
    get.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                     help="the folder to copy the files into")
    get.set_defaults(handler=run_get)


def run_list(args) -> int:
    from rnnkit.data.download import DATASETS, data_cache, sha256_of

    cache = data_cache()

    def cached(file) -> bool:
        path = cache / file.name
        return path.is_file() and path.stat().st_size == file.size and (
            sha256_of(path) == file.sha256)

    if args.json:
        print(json.dumps({"cache": str(cache), "datasets": [
            {"name": d.name, "what": d.what, "source": d.source, "licence": d.licence,
             "licence_url": d.licence_url or None, "credit": d.credit,
             "files": [{"name": f.name, "url": f.url, "bytes": f.size, "sha256": f.sha256,
                        "cached": cached(f)}
                       for f in d.files]}
            for d in DATASETS.values()]}, indent=2))
        return 0
    for chosen in DATASETS.values():
        print(f"{chosen.name}: {chosen.what}")
        print(f"  licence: {chosen.licence_text}")
        print(f"  credit:  {chosen.credit}")
        for file in chosen.files:
            mark = "  (in the cache)" if cached(file) else ""
            print(f"  {file.name}: {file.size:,} bytes from {file.url}{mark}")
    print(f"cache: {cache}")
    return 0


def run_get(args) -> int:
    from rnnkit.data.download import dataset, get

    chosen = [dataset(name) for name in args.names]  # every name checked before a download
    for each in dict.fromkeys(chosen):
        for path in get(each.name, args.out):
            print(path)
    return 0
