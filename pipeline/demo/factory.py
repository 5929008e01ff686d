"""The demo factory: its route, equipment pools, materials, products and loss reasons.

Plain data. The simulation (``generator.py``) walks lots along ``ROUTE`` (``route_walk.py``);
every workcenter name here maps to its group through ``pipeline.workcenters.group_of`` (a test
checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.workcenters import group_of, group_order


@dataclass(frozen=True)
class Step:
    """One operation of the route. ``pool`` is the equipment pool (``None``: a checkpoint)."""

    workcenter: str
    spec: str
    pool: str | None
    material: str | None = None  # part consumed at this step


@dataclass(frozen=True)
class Pool:
    """Machines of one kind: names ``<prefix>-01``.., one resource family."""

    prefix: str
    size: int
    family: str


POOLS: dict[str, Pool] = {
    "DS": Pool("DS", 6, "DISCO-DFD6361"),
    "DB": Pool("DB", 8, "ASM-AD838"),
    "WB": Pool("WB", 12, "KNS-ICONN"),
    "DW": Pool("DW", 5, "MUSASHI-SM300"),
    "MD": Pool("MD", 6, "TOWA-YPM1180"),
    "DF": Pool("DF", 4, "DEFLASH-DF200"),
    "WJ": Pool("WJ", 3, "WATERJET-WJ50"),
    "PL": Pool("PL", 6, "PLATING-RL8"),
    "MK": Pool("MK", 4, "LASER-LM20"),
    "TF": Pool("TF", 6, "TRIMFORM-TF60"),
    "TS": Pool("TS", 10, "TESTER-T3000"),
}

ROUTE: tuple[Step, ...] = (
    Step("切割", "切割入站檢查", None),
    Step("切割", "晶圓貼片", "DS"),
    Step("晶圓切割", "晶圓切割", "DS", material="BLADE-ZH05"),
    Step("切割", "切割清洗", "DS"),
    Step("切割", "切割後檢", "DS"),
    Step("切割", "UV照射", "DS"),
    Step("焊接_DB", "上片", "DB", material="EPOXY-8410"),
    Step("焊接_DB", "DB烘烤", "DB"),
    Step("焊接_DB", "DB推力測試", "DB"),
    Step("焊接_DB", "DB外觀檢驗", "DB"),
    Step("焊接_WB", "電漿清洗", "WB"),
    Step("焊接_WB", "焊線", "WB", material="AU-WIRE-1.0MIL"),
    Step("焊接_WB", "拉力測試", "WB"),
    Step("焊接_WB", "焊線檢驗", "WB"),
    Step("焊接_WB", "WB後烘烤", "WB"),
    Step("焊接_DW", "點膠", "DW"),
    Step("焊接_DW", "DW烘烤", "DW"),
    Step("焊接_DW", "DW檢驗", "DW"),
    Step("成型", "成型入站檢查", None),
    Step("成型", "塑封預熱", "MD"),
    Step("成型", "塑封", "MD", material="EMC-G700"),
    Step("成型", "後固化", "MD"),
    Step("成型", "成型外觀檢驗", "MD"),
    Step("去膠", "去膠", "DF"),
    Step("去膠", "去膠後檢", "DF"),
    Step("水吹砂", "水吹砂", "WJ"),
    Step("水吹砂", "水吹砂清洗", "WJ"),
    Step("電鍍", "鍍前處理", "PL"),
    Step("電鍍", "酸洗", "PL"),
    Step("滾鍍", "電鍍", "PL", material="SN-ANODE-99"),
    Step("電鍍", "中和水洗", "PL"),
    Step("電鍍", "鍍後烘烤", "PL"),
    Step("電鍍", "鍍層測厚", "PL"),
    Step("移印", "雷射印字", "MK"),
    Step("移印", "印字檢驗", "MK"),
    Step("切彎腳", "切筋", "TF"),
    Step("切彎腳", "成形", "TF"),
    Step("切彎腳", "切彎腳檢驗", "TF"),
    Step("TMTT", "測試入站檢查", None),
    Step("TMTT", "FT測試", "TS"),
    Step("TMTT", "分BIN", "TS"),
    Step("測試", "外觀檢驗", "TS"),
    Step("測試", "包裝", "TS"),
)
#: Route index of each step's group order, for quick "which group am I in".
STEP_GROUP_ORDER: tuple[int, ...] = tuple(group_order(group_of(s.workcenter)) for s in ROUTE)
#: The first step of a group (by group name).
FIRST_STEP_OF_GROUP: dict[str, int] = {}
for _index, _step in enumerate(ROUTE):
    FIRST_STEP_OF_GROUP.setdefault(group_of(_step.workcenter) or "", _index)
#: The test step (where detection rejects are recorded).
TEST_STEP = next(i for i, s in enumerate(ROUTE) if s.spec == "FT測試")
#: The step where the planted forward defect's lots reject more (trim/form inspection).
FORWARD_STEP = next(i for i, s in enumerate(ROUTE) if s.spec == "切彎腳檢驗")
#: Lots join combined assembly lots when they arrive at marking.
MERGE_STEP = FIRST_STEP_OF_GROUP["移印"]

#: Route steps where a lot of split depth d may split (by group: early, middle, late).
SPLIT_WINDOWS: tuple[tuple[int, int], ...] = (
    (FIRST_STEP_OF_GROUP["切割"] + 1, FIRST_STEP_OF_GROUP["焊接_WB"] - 1),
    (FIRST_STEP_OF_GROUP["焊接_WB"], FIRST_STEP_OF_GROUP["去膠"] - 1),
    (FIRST_STEP_OF_GROUP["去膠"], MERGE_STEP - 1),
)
#: Chance that a step runs on another machine of the pool than the lot's machine for the group.
P_OTHER_MACHINE = 0.1

#: Groups where a bad machine may be planted (upstream of test).
PLANT_GROUPS = ("切割", "焊接_WB", "成型", "電鍍")

#: The planted forward defect: a lot rejected at molding (成型) for this reason, and every lot
#: split or merged from it, rejects ``FORWARD_LIFT`` of its qty more at trim/form (切彎腳), for
#: ``FORWARD_DOWNSTREAM_REASON``. Test (測試) is the last group of the route, so nothing comes
#: after it: the forward effect is planted at a station with a downstream.
FORWARD_STATION = "成型"
FORWARD_FRONT_REASON = "氣孔"
FORWARD_DOWNSTREAM_REASON = "腳彎"
FORWARD_LIFT = 0.05  # fraction of qty, on average

MATERIAL_DESCRIPTIONS = {
    "BLADE-ZH05": "切割刀片 ZH05",
    "EPOXY-8410": "銀膠 8410",
    "AU-WIRE-1.0MIL": "金線 1.0mil",
    "EMC-G700": "封裝膠餅 G700",
    "SN-ANODE-99": "錫球陽極 99.9%",
}
#: Consumptions before a new material lot is opened (per part).
MATERIAL_LOT_SIZE = 40

#: (PJ_TYPE, PJ_FUNCTION) and packages (PRODUCTLINENAME).
PRODUCT_TYPES = (("TVS", "保護"), ("SBD", "整流"), ("ZENER", "穩壓"), ("MOSFET", "開關"))
PACKAGES = ("SOT-23", "SOD-123F", "SMA", "SMB", "DFN1006")

#: Loss reasons at test (detection) and elsewhere.
TEST_LOSS_REASONS = ("開路", "短路", "漏電", "電性不良", "外觀不良")
PROCESS_LOSS_REASONS = {
    0: ("崩角", "刀痕"),
    1: ("晶粒偏移", "銀膠溢出"),
    2: ("斷線", "焊點不良"),
    3: ("膠量不足",),
    4: ("氣孔", "溢膠"),
    5: ("殘膠",),
    6: ("刮傷",),
    7: ("鍍層不良", "變色"),
    8: ("印字不良",),
    9: ("腳彎", "毛邊"),
    11: ("外觀不良", "包裝不良"),
}

HOLD_REASONS = ("品質異常", "設備異常", "工程確認", "待料", "客戶要求")
HOLD_DEPARTMENTS = ("品保部", "製造部", "工程部")
EMPLOYEES = tuple(f"E{n:05d}" for n in (10231, 10488, 11020, 11347, 12003, 12561, 13004, 13990))

JOB_MODELS = ("PM-週保養", "PM-月保養", "異常維修", "換線調機")
JOB_CAUSES = ("磨耗", "參數漂移", "異物", "人為")
JOB_REPAIRS = ("更換零件", "調整參數", "清潔", "校正")
JOB_SYMPTOMS = ("良率下降", "停機", "異音", "警報")
