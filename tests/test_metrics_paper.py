"""The headline is the unweighted mean of the three task scores: all 30 cells of Calico's MixedParts table
(metrics.md 2.2) follow from the per-task rows of its supplement Table 5.

Source: PLAN-Lab/plan-lab.github.io @ cd7b56dc, assets/data/project-results/calico.json (main table and
"MixedParts results by task", from the CVPR 2025 supplement Table 5).
"""

import pytest

from mixedparts.metrics.evaluate import METRICS, macro_mean

HEADLINE = {
    "Cascade": (5.7, 27.9, 19.0, 32.2, 14.8),
    "Multi-Image PartGLEE": (1.2, 29.3, 9.7, 78.5, 63.3),
    "Multi-Image VLPart": (13.4, 42.8, 34.6, 59.1, 46.5),
    "Multi-Image GLaMM": (42.9, 59.9, 54.9, 76.8, 71.2),
    "Multi-Image LISA": (41.4, 59.7, 55.5, 78.7, 72.5),
    "Calico": (45.9, 63.7, 59.7, 82.7, 77.1),
}
PER_TASK = {  # common objects, common parts, unique parts
    "Cascade": ((7.9, 37.0, 28.2, 38.1, 29.6), (3.5, 18.6, 11.7, 25.6, 6.5), (5.7, 28.1, 17.2, 32.8, 8.2)),
    "Multi-Image PartGLEE": ((1.5, 33.5, 9.7, 87.2, 82.8), (1.9, 32.0, 10.5, 78.4, 63.3),
                             (0.1, 22.3, 8.8, 69.9, 43.9)),
    "Multi-Image VLPart": ((18.2, 42.4, 45.6, 58.8, 55.2), (15.7, 44.5, 29.1, 54.4, 39.9),
                           (6.4, 41.5, 29.0, 64.0, 44.4)),
    "Multi-Image GLaMM": ((63.2, 71.6, 73.3, 86.5, 86.2), (36.7, 52.7, 48.4, 68.5, 59.0),
                          (28.9, 55.3, 43.1, 75.3, 68.4)),
    "Multi-Image LISA": ((60.2, 70.0, 71.9, 86.0, 85.3), (37.3, 54.2, 50.5, 73.9, 63.4),
                         (26.6, 55.0, 44.1, 76.2, 68.7)),
    "Calico": ((69.2, 75.2, 78.5, 93.7, 93.4), (38.4, 56.9, 51.9, 74.4, 64.4), (30.2, 59.1, 48.8, 80.1, 73.4)),
}


@pytest.mark.parametrize("method", list(HEADLINE))
@pytest.mark.parametrize("metric", range(len(METRICS)), ids=METRICS)
def test_headline_is_the_macro_mean_of_the_task_rows(method, metric):
    tasks = [row[metric] for row in PER_TASK[method]]
    assert f"{macro_mean(tasks):.1f}" == f"{HEADLINE[method][metric]:.1f}"


def test_macro_mean_counts_every_task_an_empty_one_as_zero():
    # Skipping an undefined task (the old NaN rule) would make abstaining on it raise the headline.
    assert macro_mean([0.5, 0.0, 0.7]) == pytest.approx(0.4)
    assert macro_mean([]) == 0.0
