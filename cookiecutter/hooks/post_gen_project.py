"""Remove the example units (module and tests) of the tiers that were not chosen."""

from pathlib import Path

EXAMPLES = [("{{ cookiecutter.include_t0 }}", "t0_filter"), ("{{ cookiecutter.include_t2 }}", "t2_rise"),
            ("{{ cookiecutter.include_t3 }}", "t3_report")]

for answer, module in EXAMPLES:
    if answer != "yes":
        Path("src", "{{ cookiecutter.package_name }}", f"{module}.py").unlink()
        Path("tests", f"test_{module}.py").unlink()
