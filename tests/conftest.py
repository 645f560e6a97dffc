import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny models: one thread is faster than two contending ones on a busy machine (10x here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def _builders_leave_their_config():
    """Every task build in every test checks that the builder left the config it was given as it was (what
    the data fills in goes to a new config, parts.config): a builder that writes `cfg.model = ...` fails
    whichever test builds it."""
    from dataclasses import replace

    import nanofm.families  # noqa: F401  (registers every task)
    from nanofm import registry
    from nanofm.config import to_dict

    def checked(build):
        def build_and_check(cfg):
            before = to_dict(cfg)
            parts = build(cfg)
            assert to_dict(cfg) == before, f"the builder of task {cfg.task!r} changed the config it was given"
            return parts
        return build_and_check

    originals = dict(registry._TASKS)
    for name, spec in originals.items():
        registry._TASKS[name] = replace(spec, build=checked(spec.build))
    yield
    registry._TASKS.update(originals)
