"""The page's figure and words: the object API only, readable sizes, the answer in words."""

import matplotlib
import numpy as np
from matplotlib.text import Text

from instrec import plots
from instrec.app import words
from instrec.labels import CODES
from tests.conftest import tone


def test_figure_is_readable_and_leaves_no_pyplot_state(recognizer):
    import matplotlib.pyplot as plt

    y = np.concatenate([tone(440, 3.0), tone(196, 2.4)])
    prediction = recognizer.predict(y, 22050, name="two tones", keep_windows=60)
    assert set(prediction.features) == {"mel", "modgd", "cqt"}
    assert prediction.features["mel"].shape == (128, 5 * 100)  # 5 windows (the last one padded), as the models saw
    figure = plots.prediction_figure(prediction, recognizer.params)
    assert isinstance(figure, matplotlib.figure.Figure) and plt.get_fignums() == []  # never through pyplot
    figure.canvas.draw()  # lays the text out, as the page's rendering does
    texts = [t for t in figure.findobj(Text) if t.get_text().strip()]
    assert min(t.get_fontsize() for t in texts) >= 9
    shown = {t.get_text() for t in texts}
    assert {"cello", "voice", "electric guitar", "Hz", "note", "time (s)", "C", "A"} <= shown
    assert not {"cel", "voi", "bin"} & shown
    # panel titles lie below the figure's own title
    title = figure._suptitle.get_window_extent()
    first = figure.axes[0].title.get_window_extent()
    assert first.y1 <= title.y0 + 1


def test_answer_in_words(recognizer):
    prediction = recognizer.predict(tone(440, 2.0), 22050, name="a")
    def present(*codes):  # the instruments present are those whose fused score reaches 0.5
        prediction.fused_scores = np.array([0.9 if c in codes else 0.1 for c in CODES])

    present("pia", "voi")
    prediction.duration_s, prediction.provider = 8.04, "CPUExecutionProvider"
    assert words(prediction) == "Piano and voice, 8.0 s, on CPU"
    present("cel", "gel", "voi")
    assert words(prediction) == "Cello, electric guitar and voice, 8.0 s, on CPU"
    present()
    assert words(prediction).startswith("No instrument over its threshold")
    prediction.provider = "CUDAExecutionProvider"
    assert words(prediction).endswith("8.0 s, on GPU")


def test_the_shipped_models_figure_has_a_strip_for_the_musicnn_model():
    """The shipped fusion has the musicnn head: its probabilities get their own strip under the CNNs'."""
    from instrec.recognizer import HEAD, Recognizer

    rec = Recognizer()
    prediction = rec.predict(np.concatenate([tone(440, 3.0), tone(196, 2.4)]), 22050, name="two tones", keep_windows=60)
    assert HEAD in rec.fusion.models and prediction.window_probabilities[HEAD].shape == (5, 11)
    figure = plots.prediction_figure(prediction, rec.params)
    titles = [ax.get_title(loc="left") for ax in figure.axes]
    strip = next(ax for ax, t in zip(figure.axes, titles) if t.startswith(f"{HEAD} model"))
    np.testing.assert_array_equal(strip.get_images()[0].get_array(), prediction.window_probabilities[HEAD].T)
    assert titles.index(strip.get_title(loc="left")) == 6  # after the three pictures and their strips
