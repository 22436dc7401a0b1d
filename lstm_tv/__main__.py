"""``python -m lstm_tv`` (also what ``torchrun -m lstm_tv`` runs)."""

from lstm_tv.cli import main

if __name__ == "__main__":
    main()
