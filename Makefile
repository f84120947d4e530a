# svdinst — set-up, tests and the headless reproduction of reports/.
# `make reproduce` and `make test` work on a fresh machine; both create $(VENV) first.

VENV ?= .venv
PY := $(VENV)/bin/python
# Exact versions for this kit's CPU machines (torch comes from the machine's disk there).
# pyproject.toml keeps torch a range so Colab's preinstalled CUDA torch is reused.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# `make reproduce` runs the notebooks on the pocket model (real images at toy scale, about
# 15 minutes on a 2-core CPU); `make test` keeps them on tiny, CI's quick smoke run.
PROFILE ?= pocket
TEST_PROFILE ?= tiny
# Where the notebooks read and write data/, runs/, outputs/ and reports/: the repository for
# `make reproduce`; a scratch folder for `make test`, so a test run never overwrites the
# committed pocket report (reports/) with tiny-profile results.
WORKDIR ?= $(CURDIR)
TEST_WORKDIR ?= $(CURDIR)/build/test-notebooks
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# SOLVED=1 runs each notebook's solved copy (tools/solutions.py: every exercise cell replaced by
# notebooks/solutions/<stem>.py) and fails unless every exercise check printed ✅; `make test`
# sets it. `make reproduce` keeps SOLVED=0: the executed notebooks a learner reads show the
# unsolved exercises with their ❌ hint lines.
SOLVED ?= 0
SOLVED_DIR ?= $(CURDIR)/build/solved
# Every notebook runs once per `make test`. pytest already runs these two (01 from the built
# wheel in an empty folder: tests/course/test_standalone_notebook.py; 03 through the rehearsal
# harness: tests/packaging/test_rehearsal.py), so the papermill pass after it leaves them out.
# Each notebook makes what it needs (ensure_dataset, ensure_run), so the others still run alone.
NOTEBOOKS_RUN_BY_PYTEST := notebooks/01_data.ipynb notebooks/03_textual_inversion.ipynb
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install reproduce notebooks test lint format clean repoint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_PINS)
	$(PY) -m pip install -e '.[dev]' $(TORCH_PINS)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (svdinst)"
	touch $@

install: $(VENV)/.installed

# Run every notebook in order with papermill on the offline profile; stop at the first error.
# The failing notebook is kept in reports/executed/ with the error at its top.
notebooks: install
	mkdir -p "$(WORKDIR)/reports/executed"
	@for nb in $(NOTEBOOKS); do \
	  echo "=== $$nb (PROFILE=$(PROFILE), WORKDIR=$(WORKDIR), SOLVED=$(SOLVED))"; \
	  src="$$nb"; out="$(WORKDIR)/reports/executed/$$(basename $$nb)"; \
	  if [ "$(SOLVED)" = 1 ]; then src=$$($(PY) tools/solutions.py solve "$$nb" --out "$(SOLVED_DIR)") || exit 1; fi; \
	  $(PY) -m papermill "$$src" "$$out" \
	    -k python3 --cwd "$(WORKDIR)" -p PROFILE $(PROFILE) -p WORKDIR "$(WORKDIR)" \
	    --no-progress-bar --log-output || exit 1; \
	  if [ "$(SOLVED)" = 1 ]; then $(PY) tools/solutions.py verify "$$out" || exit 1; fi; \
	done

reproduce: notebooks

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest
	$(MAKE) notebooks PROFILE=$(TEST_PROFILE) WORKDIR=$(TEST_WORKDIR) SOLVED=1 \
	  NOTEBOOKS="$(filter-out $(NOTEBOOKS_RUN_BY_PYTEST),$(NOTEBOOKS))"

# Re-point every notebook's Colab badge and install cell to a fork or another tag, e.g.
# `make repoint REPO=me/svdinst TAG=main`: rewrites pyproject.toml's [tool.svdinst] (the one
# setting) and the notebooks' opening cells (tools/nbscaffold.py); then commit and push to the fork.
# Needs only nbformat, so it uses the venv when there is one and skips the full install.
NBPY ?= $(if $(wildcard $(PY)),$(PY),python3)
repoint:
	@test -n "$(REPO)" && test -n "$(TAG)" || { echo "usage: make repoint REPO=owner/name TAG=tag-or-branch" >&2; exit 2; }
	$(NBPY) tools/nbscaffold.py repoint --repo "$(REPO)" --tag "$(TAG)"

clean:
	rm -rf runs outputs build/test-notebooks build/solved .pytest_cache
