"""``python -m medxlate``: the command-line interface (what ``torchrun ... -m medxlate`` starts)."""

from medxlate.cli import main

if __name__ == "__main__":
    main()
