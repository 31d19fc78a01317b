#!/usr/bin/env python3
"""Lists C++ functions longer than a limit (default 80 lines, signature to closing brace).

    scripts/ci/check_function_length.py [--limit N] DIR_OR_FILE...

Exits 1 when one is over, printing `file:line: name: N lines`. A function is a brace block whose
head (the text since the previous `;`, `{` or `}`) has a parameter list and is not a control
statement, namespace, class, struct, enum or initializer; lambdas count toward their function.
"""
import argparse
import pathlib
import re
import sys

CONTROL = re.compile(r"^\s*(if|for|while|switch|catch|else|do|try|return)\b")
TYPE_HEAD = re.compile(r"\b(namespace|class|struct|union|enum)\b[^()]*$")


def strip(text):
    """Comments and string/char literals blanked out, newlines kept (so line numbers hold)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    text = strip(path.read_text(errors="replace"))
    stack = []  # (is_function, start_line, name)
    head_start = 0
    line = 1
    for i, c in enumerate(text):
        if c == "\n":
            line += 1
        elif c in ";":
            head_start = i + 1
        elif c == "{":
            head = text[head_start:i]
            inside_function = any(f for f, _, _ in stack)
            is_function = (not inside_function and ")" in head and not CONTROL.search(head)
                           and not TYPE_HEAD.search(head) and not head.rstrip().endswith("="))
            name = ""
            if is_function:
                m = re.search(r"([~\w:<>]+)\s*\([^()]*(\([^()]*\)[^()]*)*\)[^()]*$", head, re.S)
                name = m.group(1) if m else head.strip().splitlines()[0][:60]
                start = line - head.count("\n", len(head) - len(head.lstrip()))
            else:
                start = line
            stack.append((is_function, start, name))
            head_start = i + 1
        elif c == "}":
            if stack:
                is_function, start, name = stack.pop()
                if is_function:
                    yield name, start, line - start + 1
            head_start = i + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    files = []
    for p in map(pathlib.Path, a.paths):
        files += sorted(p.rglob("*.cpp")) + sorted(p.rglob("*.h")) if p.is_dir() else [p]
    over = 0
    longest = (0, "")
    for f in files:
        for name, start, length in functions(f):
            if length > longest[0]:
                longest = (length, f"{f}:{start}: {name}")
            if length > a.limit:
                over += 1
                print(f"{f}:{start}: {name}: {length} lines (limit {a.limit})")
    print(f"{len(files)} files; longest function {longest[0]} lines ({longest[1]}); {over} over {a.limit}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
