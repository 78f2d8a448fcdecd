"""Layout rules of the four wheels that ruff cannot see.

- no file directly under any `src/npr/` (npr is a namespace shared by all wheels);
- every sibling requirement admits the sibling's current version;
- imports only point down: a module imports only the npr wheels its package declares.
"""

import ast
import pathlib
import re
import sys

import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "packages"


def version_of(package_dir):
    name = package_dir.name.removeprefix("npr-")
    text = (package_dir / "src" / "npr" / name / "_version.py").read_text()
    return tuple(int(p) for p in re.search(r'"(\d+)\.(\d+)\.(\d+)"', text).groups())


def admits(spec, version):
    for clause in spec.split(","):
        op, bound = re.match(r"\s*(>=|<|<=|>|==)\s*([\d.]+)", clause).groups()
        bound = tuple(int(p) for p in bound.split("."))
        bound = bound + (0,) * (3 - len(bound))
        ok = {
            ">=": version >= bound,
            "<": version < bound,
            "<=": version <= bound,
            ">": version > bound,
            "==": version == bound,
        }[op]
        if not ok:
            return False
    return True


def main():
    errors = []
    versions = {d.name: version_of(d) for d in PACKAGES.iterdir() if d.is_dir()}
    for package_dir in sorted(PACKAGES.iterdir()):
        name = package_dir.name.removeprefix("npr-")
        stray = [p for p in (package_dir / "src" / "npr").iterdir() if p.name != name]
        errors += [f"{p}: nothing may sit directly under src/npr/" for p in stray]
        project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
        allowed = {name}
        for requirement in project["dependencies"]:
            match = re.match(r"(npr-[a-z]+)(.*)", requirement)
            if not match:
                continue
            sibling, spec = match.groups()
            allowed.add(sibling.removeprefix("npr-"))
            if not spec or "==" in spec:
                errors.append(f"{package_dir.name}: {sibling} needs a version range, got {spec!r}")
            elif not admits(spec, versions[sibling]):
                errors.append(f"{package_dir.name}: {sibling}{spec} excludes its current version {versions[sibling]}")
        for source in (package_dir / "src").rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                modules = []
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                for module in modules:
                    parts = module.split(".")
                    if parts[0] == "npr" and len(parts) > 1 and parts[1] not in allowed:
                        errors.append(
                            f"{source.relative_to(ROOT)}: imports {module}, not declared by {package_dir.name}"
                        )
                    if name == "diagnostics" and parts[0] == "jax":
                        errors.append(f"{source.relative_to(ROOT)}: npr-diagnostics must not import jax")
    for error in errors:
        print(error)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
