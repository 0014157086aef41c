"""`python -m w2m2w`: the same as the installed `w2m2w` command."""

from w2m2w.cli import main

if __name__ == "__main__":
    main()
