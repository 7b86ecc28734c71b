"""Refuse answers that would generate a broken package, before anything is written."""

import re
import sys

distribution = "{{ cookiecutter.distribution_name }}"
package = "{{ cookiecutter.package_name }}"
prefix = "{{ cookiecutter.unit_prefix }}"

problems = []
if not re.fullmatch(r"[a-z0-9]+([-_.][a-z0-9]+)*", distribution):
    problems.append(f"distribution_name {distribution!r}: use lower-case letters, digits and '-', e.g. ampel-plugin-mysurvey")
if not package.isidentifier():
    problems.append(f"package_name {package!r} is not a Python identifier, e.g. ampel_plugin_mysurvey")
if not (prefix.isidentifier() and prefix[:1].isupper()):
    problems.append(f"unit_prefix {prefix!r}: use a CamelCase identifier, e.g. MySurvey")
if problems:
    sys.exit("error: " + "\nerror: ".join(problems))
