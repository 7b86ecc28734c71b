"""The AMPEL plugin of {{ cookiecutter.distribution_name }}: what this package adds to AMPEL.

The entry point in pyproject.toml names this module. Keep it light: every ``ampel`` command imports
it. Units are listed by import path and imported only when used.
"""

from ampel_core.hookspecs import hookimpl


@hookimpl
def ampel_units() -> list[str]:
    return [
{%- if cookiecutter.include_t0 == "yes" %}
        "{{ cookiecutter.package_name }}.t0_filter:{{ cookiecutter.unit_prefix }}Filter",
{%- endif %}
{%- if cookiecutter.include_t2 == "yes" %}
        "{{ cookiecutter.package_name }}.t2_rise:T2{{ cookiecutter.unit_prefix }}Rise",
{%- endif %}
{%- if cookiecutter.include_t3 == "yes" %}
        "{{ cookiecutter.package_name }}.t3_report:T3{{ cookiecutter.unit_prefix }}Report",
{%- endif %}
    ]
