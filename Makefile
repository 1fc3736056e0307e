# Every target installs what it needs into .venv first; nothing has to be done by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build installs quickly here; on a CUDA machine: make train TORCH_SPEC="torch>=2.2"
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test train bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,data,docs]"
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[dev,data,bench]"
	touch $@

install: $(VENV)/.installed

# RLlib pins an older gymnasium than ours: its side-by-side benchmark gets an environment of its own.
RLLIB_VENV := bench/.venv-rllib
$(RLLIB_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(RLLIB_VENV)
	$(RLLIB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RLLIB_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)" "ray[rllib]>=2.9"
	$(RLLIB_VENV)/bin/python -m pip install --quiet -e .
	touch $@

.PHONY: bench-rllib
bench-rllib: $(RLLIB_VENV)/.installed
	cd bench && ../$(RLLIB_VENV)/bin/python rllib_ppo.py

# The tests whose numbers run through torch's CPU kernels run again on the kernel sets another CPU may
# pick (ATEN_CPU_CAPABILITY; this machine's own ran above): a test that holds only for one CPU's rounding
# fails here, not on a user's machine.
FLOAT_SENSITIVE := tests/test_ipa.py tests/test_learner.py tests/test_memory.py tests/test_resample.py \
	tests/test_rollout.py tests/test_checkpoint.py tests/test_sft.py tests/test_api.py tests/test_workers.py \
	tests/test_trajectories.py tests/test_learner_mutants.py tests/test_compile.py

test: install
	$(PY) -m pytest
	for capability in default avx2; do \
		echo "ATEN_CPU_CAPABILITY=$$capability: $(words $(FLOAT_SENSITIVE)) float-sensitive test files"; \
		ATEN_CPU_CAPABILITY=$$capability $(PY) -m pytest -q $(FLOAT_SENSITIVE) || exit 1; \
	done

train: install
	$(PY) -m openclaw_rl.train $(ARGS)

# All benchmarks; each writes bench/results/NAME.{json,md}. Takes ~3.5 hours on 2 cores.
bench: $(VENV)/.bench-installed
	cd bench && ../$(PY) env_throughput.py && ../$(PY) train_sps.py && ../$(PY) features_sps.py && ../$(PY) threads.py && ../$(PY) learning.py && ../$(PY) alma_vs.py --first-seed 10 && ../$(PY) dataset_scale.py && ../$(PY) post_training.py && ../$(PY) suite.py && ../$(PY) calibration.py && ../$(PY) memory_sps.py && ../$(PY) memory.py && ../$(PY) memory_bound.py && ../$(PY) workers.py && ../$(PY) alma_ray.py
	$(MAKE) bench-rllib

# Semantic mutants of the core math (IPA, targets and losses, collector, engine accounting), each run
# against its tests in a temporary copy; every one must be killed. ~5 minutes; not part of `make test`.
.PHONY: mutation
mutation: install
	$(PY) scripts/mutation.py

clean:
	rm -rf $(VENV) $(RLLIB_VENV) *.egg-info .pytest_cache
