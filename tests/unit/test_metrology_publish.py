"""Every key metrology publishes is in the point map (which alone declares its unit and description), with the
same kind and size."""
import math

import numpy as np

from firmware.points import points_by_name
from metrology.energy import EnergyIncrement
from metrology.publish import PUBLISHED, publish
from metrology.systems import wiring


def test_published_keys_are_the_point_map_keys():
    points = points_by_name()
    for p in PUBLISHED:
        assert p.name in points, f"{p.name} is published but not in firmware/points/*.toml"
        point = points[p.name]
        assert (point.kind, point.size) == (p.kind, p.size), p.name
        assert point.description, p.name
    measurements = [pt for pt in points.values() if pt.source == "measurements.toml"]
    names = {p.name for p in PUBLISHED}
    assert all(pt.name in names for pt in measurements)


def test_absent_phases_publish_nan_and_missing_values_do_not_raise():
    values = {"v_ln": np.array([230.0, 0, 0]), "i": np.array([5.0, 0, 0]), "p": np.array([1150.0, 0, 0, 1150.0])}
    out = publish(values, EnergyIncrement(), wiring("SINGLE").signal_present())
    assert out["v_an"] == 230.0 and math.isnan(out["v_bn"]) and math.isnan(out["p_b"])
    assert out["p_total"] == 1150.0 and out["wh_delivered"] == 0.0
    assert math.isnan(out["thd_v_an"]) and out["harmonics_v_an"].shape == (64,)
