#!/usr/bin/env python3
"""Keeps PayKKa's protocol in adapters/paykka/.

Fails (exit 1, one line per finding) when a C++ string literal outside
adapters/paykka/ is a piece of PayKKa's protocol:
  - an API path ("/v3/..."), a signature header ("x-paykka-..."),
  - an envelope field ("ret_code", "ret_msg", "event_type"), a six-digit
    ret_code ("000000", "206005", ...), the signing algorithm,
  - one of PayKKa's request enum texts: every payorch.v1 enum value is
    named <TYPE PREFIX><PayKKa's text> (mapping.cc), so the texts are read
    from proto/payorch/v1/payorch.proto (the *Status enums apart: their
    texts are ordinary words); plus "BANKCARD".
Exempt: sandbox/ (the simulator speaks PayKKa by design), tests/, and the
programs that are payorch's callers or stand in for one (bench/, clients/).
Comments are not checked. Usage: check_paykka_strings.py [SOURCE_DIR]
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), ".."))
ALLOWED = ("adapters/paykka/",)
EXEMPT = ("sandbox/", "tests/", "bench/", "clients/")
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def enum_texts():
    proto = open(os.path.join(ROOT, "proto/payorch/v1/payorch.proto")).read()
    texts = set()
    for enum, body in re.findall(r"^enum (\w+) \{(.*?)^\}", proto,
                                 re.M | re.S):
        if enum.endswith("Status"):
            continue  # PROCESSING, COMPLETED, ...: too common as words
        names = re.findall(r"^\s+([A-Z0-9_]+)\s*=\s*\d+;", body, re.M)
        unspecified = [n for n in names if n.endswith("_UNSPECIFIED")]
        if not unspecified:
            continue
        prefix = unspecified[0][: -len("UNSPECIFIED")]
        texts.update(n[len(prefix):] for n in names
                     if n.startswith(prefix) and n not in unspecified)
    texts.discard("OTHER")  # payorch's own catch-all, not a PayKKa text
    return texts


def protocol_reason(literal, texts):
    if "/v3/" in literal:
        return "PayKKa API path"
    if literal.lower().startswith("x-paykka"):
        return "PayKKa header"
    if literal in ("ret_code", "ret_msg", "event_type"):
        return "PayKKa envelope field"
    if re.fullmatch(r"\d{6}", literal):
        return "PayKKa ret_code"
    if literal in ("SHA256_WITH_RSA", "BANKCARD") or literal in texts:
        return "PayKKa enum text"
    return None


def code_literals(line):
    """The string literals of `line` that come before a // comment."""
    out = []
    pos = 0
    while True:
        comment = line.find("//", pos)
        m = LITERAL.search(line, pos)
        if m is None or (comment != -1 and comment < m.start()):
            return out
        out.append(m.group(1))
        pos = m.end()


def main():
    texts = enum_texts()
    findings = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [
            d for d in dirnames
            if not d.startswith(".") and not d.startswith("build")
            and not os.path.exists(os.path.join(dirpath, d, "CMakeCache.txt"))
            and not (rel_dir + d + "/").startswith(ALLOWED + EXEMPT)
        ]
        for name in sorted(filenames):
            if not name.endswith((".cc", ".h")):
                continue
            rel = rel_dir + name
            in_block_comment = False
            with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if in_block_comment:
                        if "*/" not in line:
                            continue
                        line = line[line.index("*/") + 2:]
                        in_block_comment = False
                    if line.lstrip().startswith("/*") and "*/" not in line:
                        in_block_comment = True
                        continue
                    for literal in code_literals(line):
                        why = protocol_reason(literal, texts)
                        if why:
                            findings.append('%s:%d: "%s" is a %s; it belongs '
                                            "in adapters/paykka/" %
                                            (rel, number, literal, why))
    for f in findings:
        print(f)
    print("paykka strings: %d finding(s) outside adapters/paykka/" %
          len(findings))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
