import pytest

from suanli.catalog.accelerator import load_catalog, parse_catalog
from suanli.errors import ValidationError

REQUIRED = [
    "K80",
    "P100",
    "V100-16GB",
    "V100-32GB",
    "T4",
    "A10",
    "A100-80GB",
    "A800-80GB",
    "H100-80GB",
    "H800-80GB",
    "H20",
    "L40S",
    "L20",
    "RTX4090",
    "Ascend910B",
    "Ascend910B2",
    "Ascend910B3",
    "Ascend910B4",
    "Ascend910C",
    "Ascend310P",
    "MLU370-X8",
    "MLU590",
    "DCU-Z100",
    "DCU-K100",
    "R200",
    "P800",
    "C500",
    "C550",
    "MTT-S4000",
    "BI-V150",
    "BR100",
    "BR104",
    "Enflame-S60",
    "PPU",
]


def test_catalog_covers_the_required_models_and_vendors() -> None:
    cat = load_catalog()
    assert len(cat) >= 28
    assert len(cat.vendors) >= 10
    for mid in REQUIRED:
        assert mid in cat, mid


def test_every_row_has_a_source_and_figures_are_never_invented() -> None:
    cat = load_catalog()
    for m in cat:
        assert m.source
        assert (m.peak_tflops is None) == (m.peak_basis == "")
    # the reference table has no trustworthy figure for these: they stay empty
    for mid in ["MLU590", "DCU-Z100", "R200", "P800", "C500", "C550", "Enflame-S60", "PPU"]:
        assert cat.get(mid).peak_tflops is None, mid
        assert cat.get(mid).nu_per_device is None


def test_known_figures_and_units() -> None:
    cat = load_catalog()
    h100 = cat.get("H100-80GB")
    assert h100.peak_tflops == 989 and h100.peak_precision == "bf16"
    assert h100.nu_per_device == pytest.approx(0.989)
    assert cat.get("Ascend910B").peak_basis == "measured"
    assert cat.get("K80").peak_precision == "fp32"
    assert cat.get("Ascend910C").alloc_unit == 2


def test_resolve_by_id_and_family_case_insensitively() -> None:
    cat = load_catalog()
    assert cat.resolve("V100") == ("V100-16GB", "V100-32GB")
    assert cat.resolve("h800-80gb") == ("H800-80GB",)
    assert set(cat.resolve("Ascend910B")) >= {"Ascend910B", "Ascend910B2", "Ascend910B4"}
    assert cat.resolve("nope") == ()
    assert set(cat.with_stack("mlu")) == {"MLU370-X8", "MLU590"}


def test_bad_catalog_rows_name_line_and_column() -> None:
    header = (
        "id,family,vendor,name,memory_gb,memory_bw_gbs,peak_tflops,peak_precision,"
        "peak_basis,stack,resource_name,alloc_unit,source"
    )
    bad = header + "\nX,X,V,X,abc,,10,bf16,,quantum,r,1,\n"
    with pytest.raises(ValidationError) as err:
        parse_catalog(bad)
    fields = {p.field for p in err.value.problems}
    assert {"line 2.memory_gb", "line 2.stack", "line 2.peak_basis", "line 2.source"} <= fields


def test_catalog_json_shape() -> None:
    row = load_catalog().get("MLU370-X8").to_json()
    assert {"vendor", "model", "memory_gb", "stack"} <= set(row)
