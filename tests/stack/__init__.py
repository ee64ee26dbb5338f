"""Tests of the loopback server stack (infra/stack.py).

infra/ is not a package, so the module is loaded by path, once, as `infra_stack`.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "defectqa_infra_stack"


def _load():
    if _NAME not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "infra" / "stack.py"
        spec = importlib.util.spec_from_file_location(_NAME, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module  # registered before exec, as dataclasses/pickling expect
        spec.loader.exec_module(module)
    return sys.modules[_NAME]


infra_stack = _load()
