"""The demo's prose follows its numbers."""

from saddlepoint.experiments.studies.demo import pgd_reading


def test_pgd_is_said_to_overstate_only_when_it_does():
    assert "overstates it by 12.0 points" in pgd_reading(0.38, 0.26, 200)
    equal = pgd_reading(0.825, 0.825, 200)
    assert "overstates" not in equal and "as much as the strongest" in equal
    assert "overstates" not in pgd_reading(0.830, 0.825, 200)  # one image is not a claim
