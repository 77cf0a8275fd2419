"""The instrec web app (Hugging Face Spaces' entry point): ``python app.py``.

Settings come from the environment (see :mod:`instrec.app`)."""

from instrec.app import serve

if __name__ == "__main__":
    serve()
