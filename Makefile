# Set-up, tests and demo. Every target creates the virtual environment on first use.
VENV   ?= .venv
ifeq ($(OS),Windows_NT)
PYTHON ?= py -3.11
PY     := $(VENV)/Scripts/python.exe
else
PYTHON ?= python3
PY     := $(VENV)/bin/python
endif
# Pinned so that pip never resolves an unpinned torch (which pulls the multi-GB CUDA build on
# machines where the CPU wheel is not already local). Override for a CUDA build, e.g.
#   make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup test lint demo clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install ".[pose,dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests

lint: $(STAMP)
	$(PY) -m ruff check .

demo: $(STAMP)
	$(PY) gen_video.py --pose=pretrained/example.pose --network=pretrained/demo-G.pkl --lstm=pretrained/demo-lstm.pt --output=out.mp4 --side-by-side

clean-venv:
	rm -rf $(VENV)
