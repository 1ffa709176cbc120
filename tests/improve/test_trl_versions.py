"""distill finds TRL's KTOTrainer wherever the installed TRL keeps it, or says what to do."""

from __future__ import annotations

import sys
import types

import pytest

from selftune.errors import SelftuneError


def fake_trl(monkeypatch, top_level: bool, experimental: bool) -> type:
    class KTOTrainer:
        pass

    class KTOConfig:
        pass

    trl = types.ModuleType("trl")
    trl.__version__ = "9.9.9"
    trl.__path__ = []
    exp = types.ModuleType("trl.experimental")
    exp.__path__ = []
    kto = types.ModuleType("trl.experimental.kto")
    if top_level:
        trl.KTOTrainer, trl.KTOConfig = KTOTrainer, KTOConfig
    if experimental:
        kto.KTOTrainer, kto.KTOConfig = KTOTrainer, KTOConfig
    monkeypatch.setitem(sys.modules, "trl", trl)
    monkeypatch.setitem(sys.modules, "trl.experimental", exp)
    monkeypatch.setitem(sys.modules, "trl.experimental.kto", kto)
    monkeypatch.setitem(sys.modules, "trl.trainer", None)
    monkeypatch.setitem(sys.modules, "trl.trainer.kto_trainer", None)
    return KTOTrainer


def test_the_installed_trl_has_a_kto_trainer():
    pytest.importorskip("trl")
    from selftune.improve.distill import kto_classes

    config, trainer = kto_classes()
    assert config.__name__ == "KTOConfig" and trainer.__name__ == "KTOTrainer"


@pytest.mark.parametrize(("top_level", "experimental"), [(True, False), (False, True)])
def test_kto_is_found_at_the_top_or_in_experimental(monkeypatch, top_level, experimental):
    from selftune.improve.distill import kto_classes

    trainer = fake_trl(monkeypatch, top_level, experimental)
    assert kto_classes()[1] is trainer


def test_a_trl_without_kto_names_its_version_and_the_way_out(monkeypatch):
    from selftune.improve.distill import kto_classes

    fake_trl(monkeypatch, False, False)
    with pytest.raises(SelftuneError, match=r"trl 9\.9\.9 has no KTOTrainer.*method: dpo"):
        kto_classes()
