"""The S4100 object model: objects.toml against the point map, AV settings and their ranges, alerts and QNAN."""
from __future__ import annotations

import math

import pytest

from firmware.comms.bacnet import readings
from firmware.comms.bacnet.model import OBJECTS_FILE, load_model
from firmware.comms.bacnet.readings import Limits
from firmware.comms.bacnet.settings import OutOfRange, max_power_kw, output_config, plan_write, read_settings
from firmware.config import meter_schema
from firmware.points import points_by_name
from hal.errors import ConfigError


def config(**sections):
    return meter_schema().load(sections)


def test_the_model_has_every_s4100_instance_and_only_known_points():
    model = load_model()
    assert [ai.instance for ai in model.analog_inputs] == list(range(1, 84))
    assert len(model.analog_values) == 11 and len(model.binary_inputs) == 15 and len(model.trend_logs) == 3
    points = points_by_name()
    assert all(ai.point in points for ai in model.analog_inputs if ai.point)
    # the S4100's names for the objects integrators address by name
    names = {ai.instance: ai.name for ai in model.analog_inputs}
    assert names[1] == "KWh_Net" and names[11] == "KW_Total" and names[76] == "Max_Power"
    assert model.analog_values[0].name == "Config" and model.binary_inputs[14].name == "RTC_Reset"


def test_a_wrong_object_file_is_refused_with_the_entry(tmp_path):
    text = OBJECTS_FILE.read_text()
    bad = tmp_path / "objects.toml"
    bad.write_text(text.replace('point = "wh_delivered"\n', 'point = "wh_delivred"\n', 1))
    with pytest.raises(ConfigError, match=r"analog_input 2 \(KWh_Import\): point 'wh_delivred'"):
        load_model.__wrapped__(bad)
    bad.write_text(text.replace("instance = 83\n", "instance = 84\n"))
    with pytest.raises(ConfigError, match=r"missing \[83\]"):
        load_model.__wrapped__(bad)


def test_max_power_follows_the_s4100_example():
    # seed 003 "BACnet Default Settings": 600 V L-L, 100 A CTs, wye: 103.92 kW
    cfg = config(metrology={"system_type": "4W-WYE", "nominal_voltage": 600 / math.sqrt(3), "ct_primary": 100.0})
    assert read_settings(cfg)["system_voltage"] == pytest.approx(600.0)
    assert max_power_kw(cfg) == pytest.approx(103.92, abs=0.005)


def test_settings_read_as_the_s4100_encodes_them():
    cfg = config(metrology={"system_type": "2L+1n", "nominal_voltage": 120.0, "pt_primary": 480.0,
                            "pt_secondary": 120.0},
                 revenue={"demand_interval": 15, "demand_subintervals": 3})
    s = read_settings(cfg)
    assert s["system_type"] == 12 and s["system_voltage"] == 240.0 and s["pt_ratio"] == 4.0
    assert s["subinterval_length"] == 30000.0 and s["command"] == 0.0
    assert read_settings(config(revenue={"demand_sync": "command"}))["subinterval_length"] == 0.0


@pytest.mark.parametrize("setting,value,why", [
    ("system_type", 20, "one of 10, 11, 12, 31, 40"),
    ("ct_primary", 32001, "5 to 32000"),
    ("ct_secondary", 3, "1 or 5"),
    ("pt_ratio", 0.001, "0.01 to 320"),
    ("system_voltage", 700, "82 to 660"),          # with PT ratio 1: AV6/AV5 over 660
    ("display_units", 2, "0 \\(IEC\\) or 1"),
    ("phase_loss_voltage", 0, "1 to 99"),
    ("phase_loss_imbalance", 12.5, "whole number"),
    ("subintervals", 7, "1 to 6"),
    ("subinterval_length", 1050, "multiples of 100"),
    ("subinterval_length", 42000, "7-min demand interval"),
])
def test_out_of_range_writes_say_why(setting, value, why):
    with pytest.raises(OutOfRange, match=why):
        plan_write(setting, value, config(revenue={"demand_subintervals": 1}))


def test_writes_become_configuration_changes():
    cfg = config(metrology={"system_type": "4W-WYE", "nominal_voltage": 230.0})
    assert plan_write("system_type", 31, cfg) == {"metrology": {"system_type": "DELTA",
                                                                "nominal_voltage": pytest.approx(398.371686)}}
    assert plan_write("system_voltage", 480, cfg) == {"metrology": {"nominal_voltage": pytest.approx(277.128129)}}
    assert plan_write("subinterval_length", 0, cfg) == {"revenue": {"demand_sync": "command"}}
    assert plan_write("ct_secondary", 5, cfg) == {"metrology": {"ct_secondary": 5.0}}
    assert plan_write("pt_ratio", 4, cfg) == {"metrology": {"pt_primary": 4.0}}
    assert plan_write("display_units", 0, cfg) == {"metrology": {"pf_convention": "IEC"}}
    assert plan_write("phase_loss_voltage", 20, cfg) == {"bacnet": {"phase_loss_voltage": 20}}


def test_demand_interval_from_subintervals():
    cfg = config(revenue={"demand_interval": 15, "demand_subintervals": 3})   # 300-s subintervals
    assert plan_write("subintervals", 2, cfg) == {"revenue": {"demand_interval": 10, "demand_subintervals": 2,
                                                              "demand_method": "rolling"}}
    assert plan_write("subintervals", 1, cfg) == {"revenue": {"demand_interval": 5, "demand_subintervals": 1,
                                                              "demand_method": "block"}}
    assert plan_write("subinterval_length", 120000, cfg) == {"revenue": {"demand_interval": 60,
                                                                         "demand_subintervals": 3,
                                                                         "demand_method": "rolling"}}
    with pytest.raises(OutOfRange, match="25-min"):
        plan_write("subintervals", 5, cfg)


LIMITS = Limits(40, 230.0, 398.4, 100.0, 0.10, 0.25)
NORMAL = {"v_an": 230.0, "v_bn": 231.0, "v_cn": 229.0, "i_a": 10.0, "i_b": 10.0, "i_c": 10.0, "pf_a": 0.95,
          "pf_b": 0.95, "pf_c": 0.95, "frequency": 50.0, "time_synced": 1.0}


def test_alerts_follow_the_s4100_thresholds():
    assert not any(readings.alerts(NORMAL, LIMITS).values())
    # 1.2 x 230 V = 276 V: just above raises the phase's voltage alert
    assert readings.alerts({**NORMAL, "v_bn": 276.5}, LIMITS)["volts_error_b"]
    assert not readings.alerts({**NORMAL, "v_bn": 275.5}, LIMITS)["volts_error_b"]
    assert readings.alerts({**NORMAL, "i_c": 121.0}, LIMITS)["current_error_c"]
    # phase loss: below 10 % of nominal, or more than 25 % below the highest phase
    assert readings.alerts({**NORMAL, "v_an": 22.0}, LIMITS)["phase_loss_a"]
    assert readings.alerts({**NORMAL, "v_an": 170.0}, LIMITS)["phase_loss_a"]
    assert not readings.alerts({**NORMAL, "v_an": 175.0}, LIMITS)["phase_loss_a"]
    # low PF only with load (over 1 % of the 100-A rating)
    assert readings.alerts({**NORMAL, "pf_a": 0.4}, LIMITS)["low_pf_a"]
    assert not readings.alerts({**NORMAL, "pf_a": 0.4, "i_a": 0.5}, LIMITS)["low_pf_a"]
    assert readings.alerts({**NORMAL, "frequency": math.nan}, LIMITS)["frequency_error"]
    assert readings.alerts({**NORMAL, "time_synced": 0.0}, LIMITS)["rtc_reset"]
    # single phase: phases B and C never alert
    single = Limits(10, 230.0, 230.0, 100.0, 0.10, 0.25)
    active = readings.alerts({**NORMAL, "v_bn": math.nan, "v_cn": 0.0}, single)
    assert not any(active[f"phase_loss_{p}"] for p in "bc")


def test_bitmap_and_reliability():
    model = load_model()
    active = readings.alerts({**NORMAL, "v_an": 300.0, "frequency": 70.0}, LIMITS)
    assert readings.alarm_bitmap(model, active) == 0b1000001          # BI1 and BI7
    counts = [7.0, 3.0] + [math.nan] * 14
    ais, bis = readings.read_all(model, {**NORMAL, "v_an": 300.0, "p_a": 1500.0, "wh_delivered": 5e6,
                                         "di_count": counts, "power_up_count": 12.0},
                                 LIMITS, 103.92, stale=False, output_config=0b1011)
    assert ais[70].reliability == "unreliable-other" and ais[55].reliability == "unreliable-other"
    assert ais[55].value == pytest.approx(1.5)                         # W to kW
    assert ais[2].value == pytest.approx(5000.0) and ais[2].reliability == "no-fault-detected"
    assert math.isnan(ais[28].value) and ais[28].reliability == "no-fault-detected"    # reserved
    assert ais[29].value == 7.0 and ais[29].reliability == "no-fault-detected"      # pulse input 1's count
    assert ais[81].value == 12.0                                                      # power-ups
    assert ais[76].value == 103.92 and ais[82].value == 11.0
    assert math.isnan(readings.read_all(model, NORMAL, LIMITS, 1.0, False, 0)[0][29].value)   # io not running
    stale_ais, stale_bis = readings.read_all(model, NORMAL, LIMITS, 1.0, stale=True, output_config=0)
    assert all(r.reliability == "communication-failure" for r in [*stale_ais.values(), *stale_bis.values()])


def test_output_config_has_a_bit_per_driven_output():
    def cfg(outputs):
        return meter_schema().load({"io": {"output": outputs}}, source="test")

    assert output_config(cfg([])) == 0
    # outputs 1, 2 and 4 driven (energy, alarm, demand interval), 3 listed but without a source: 0b1011 = 11
    assert output_config(cfg([{"number": 1, "source": "energy"}, {"number": 2, "source": "alarm"},
                              {"number": 3, "source": "none"}, {"number": 4, "source": "demand_interval"}])) == 11
