"""Oracle for the differential test on Python 3.10: is a line mismatch py-spy's bug?

Usage: python3.10 pyspy310_line_bug.py FILE FUNCTION OUR_LINE PYSPY_LINE

py-spy 0.4.3 decodes 3.10's co_linetable without advancing the byte address over "no line"
entries (line delta -128), so after such an entry it reports the line of a later range. This
compiles FILE with this interpreter and exits 0 if some code object named FUNCTION has an
offset whose true line (co_lines(), the interpreter's own answer) is OUR_LINE while that
misreading gives PYSPY_LINE; else exits 1.
"""
import sys


def code_objects(code):
    yield code
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            yield from code_objects(const)


def misread_line(code, offset):
    """The line the -128-skipping decoder gives for byte `offset`."""
    table = code.co_linetable
    line = code.co_firstlineno
    address = 0
    for i in range(0, len(table) - 1, 2):
        delta, line_delta = table[i], table[i + 1]
        if line_delta >= 128:
            line_delta -= 256
        if line_delta == -128:
            continue  # the byte length of this entry is lost
        line += line_delta
        address += delta
        if address > offset:
            break
    return line


def main():
    path, function, ours, theirs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(path, "rb") as f:
        module = compile(f.read(), path, "exec")
    for code in code_objects(module):
        if code.co_name != function.rsplit(".", 1)[-1]:
            continue
        for start, end, line in code.co_lines():
            for offset in range(start, end, 2):
                if line == ours and misread_line(code, offset) == theirs:
                    sys.exit(0)
    sys.exit(1)


main()
