"""AuditConfig: every knob of an audit, frozen, with the defaults in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOP_K = 10
DEFAULT_SEED = 0
DEFAULT_LANGUAGES = ("es", "en")
FAIL_ON_CHOICES = ("never", "low", "medium", "high")
DEVICE_CHOICES = ("cpu", "cuda", "auto")
DEFAULT_MAX_ABLATIONS = 4  # flagged positions the behavioural check replaces; each costs two suite runs
# The behavioural rule's thresholds: the four-fifths rule (US employment practice, EEOC 29 CFR 1607.4(D))
# and the level of its tests (the tool's engineering choice).
DEFAULT_IMPACT_THRESHOLD = 0.8
DEFAULT_ALPHA = 0.05
DEFAULT_FAITHFUL_BUDGET = 6.0  # --faithful-budget: suite-run equivalents, the confirmation run included


@dataclass(frozen=True)
class AuditConfig:
    """How to audit (the same for every prompt of a run; the prompts themselves are the engine's input).
    Paths are resolved by the loaders, not here."""

    model: str | None = None
    methods: tuple[str, ...] | None = None  # None: every method that applies to the model
    top_k: int = DEFAULT_TOP_K
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    wordlist_dirs: tuple[Path, ...] = ()
    allowlist: Path | None = None
    reference_text: str | None = None
    seed: int = DEFAULT_SEED
    fail_on: str = "never"
    key: str | None = None
    allow_pickle_model: bool = False
    device: str = "cpu"
    chunk_size: int = 16384
    centered_components: int = 0  # top principal directions removed by the `centered` method
    progress: bool = True
    behaviour: str | None = None  # a probe suite (packaged id or .toml path): run the behavioural check
    max_ablations: int = DEFAULT_MAX_ABLATIONS
    impact_threshold: float = DEFAULT_IMPACT_THRESHOLD  # a group below it with q < alpha is a gap
    alpha: float = DEFAULT_ALPHA  # level of the gap test (q), the non-inferiority test and power
    sequential: bool = False  # behavioural check: stop at the first look whose verdict is HIGH or LOW
    # behavioural check: search the discrete text that behaves most like the prompt (audit.behaviour.faithful)
    faithful_reading: bool = False
    faithful_budget: float = DEFAULT_FAITHFUL_BUDGET  # suite-run equivalents the search may score
    faithful_seconds: float | None = None  # wall-time limit of the search (None: none; reproducible)
    model_mismatch_ok: bool = False  # audit against a --model that is certainly not the adapter's base model
