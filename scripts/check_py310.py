"""Fail when any Python file would not parse under Python 3.10 (ROS 2 Humble, JetPack).

Run with a 3.10 interpreter when one exists (real check); with a newer one it uses
ast.parse(feature_version=(3, 10)), which catches most newer syntax.
"""
import ast
import pathlib
import sys


def main(paths):
    bad = 0
    for root in paths:
        for path in sorted(pathlib.Path(root).rglob("*.py")):
            try:
                ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 10))
            except SyntaxError as exc:
                print(f"{path}:{exc.lineno}: not Python 3.10 syntax: {exc.msg}")
                bad += 1
    print(f"py310 syntax: {'FAILED' if bad else 'ok'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main([p for p in sys.argv[1:] if pathlib.Path(p).exists()]))
