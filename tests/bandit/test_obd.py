"""The Open Bandit Dataset reader on a hand-made folder in its layout: OBP's preprocessing by hand
(timestamp order, dense positions, one-hot users without the first category, label-encoded
items), one-line errors, and ``policyfit bandit import-obd``."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from policyfit.bandit import load_feedback
from policyfit.bandit.obd import read_obd
from policyfit.cli.main import cli
from policyfit.errors import DatasetError

LOG = """\
,timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1,user_feature_2,user_feature_3,user-item_affinity_0,user-item_affinity_1,user-item_affinity_2
0,2019-11-24 00:00:03+00:00,2,3,0,0.25,bb,x,p,q,0.0,0.0,0.0
1,2019-11-24 00:00:01+00:00,0,1,1,0.5,aa,y,p,q,0.0,1.0,0.0
2,2019-11-24 00:00:02+00:00,1,3,0,0.125,cc,x,p,q,0.0,0.0,0.0
3,2019-11-24 00:00:04+00:00,2,1,1,1.0,aa,x,p,r,0.0,0.0,0.5
"""
ITEMS = """\
,item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3
0,0,-0.5,h2,k,m
1,2,0.25,h1,k,m
2,1,1.5,h2,k,n
"""


@pytest.fixture
def obd_root(tmp_path):
    folder = tmp_path / "open_bandit_dataset" / "random" / "all"
    folder.mkdir(parents=True)
    (folder / "all.csv").write_text(LOG)
    (folder / "item_context.csv").write_text(ITEMS)
    return tmp_path / "open_bandit_dataset"


def test_obps_preprocessing_by_hand(obd_root):
    fb = read_obd(obd_root, "random", "all")
    # sorted by timestamp: rows 1, 2, 0, 3 of the file
    assert fb.action.tolist() == [0, 1, 2, 2]
    assert fb.position.tolist() == [0, 1, 1, 0]  # positions {1, 3} -> dense ranks {0, 1}
    assert fb.reward.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert fb.pscore.tolist() == [0.5, 0.125, 0.25, 1.0]
    # user_feature_0 in {aa, bb, cc} -> [bb, cc]; _1 in {x, y} -> [y]; _2 {p} -> none; _3 {q, r} -> [r]
    assert fb.context.tolist() == [
        [0, 0, 1, 0],  # aa, y, p, q
        [0, 1, 0, 0],  # cc, x, p, q
        [1, 0, 0, 0],  # bb, x, p, q
        [0, 0, 0, 1],  # aa, x, p, r
    ]
    # rows by item id; columns: item_feature_1..3 label-encoded (sorted), then item_feature_0
    assert fb.action_context.tolist() == [
        [1, 0, 0, -0.5],  # item 0: h2, k, m
        [1, 0, 1, 1.5],  # item 1: h2, k, n
        [0, 0, 0, 0.25],  # item 2: h1, k, m
    ]
    assert fb.n_actions == 3 and fb.len_list == 2
    # the campaign folder itself works as the root too
    assert read_obd(obd_root / "random" / "all").n_rounds == 4


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("propensity_score", "propensity"), "all.csv: propensity_score: column is missing"),
        (lambda t: t.replace(",0.125,", ",abc,"), "all.csv: propensity_score: line 4: 'abc' is not a number"),
        (lambda t: t.replace(",0.125,", ",0.0,"), "all.csv: pscore: 1 values outside (0, 1]"),
        (lambda t: t + "4,2019\n", "all.csv: file: line 6 has 2 fields, the header 13"),
        (lambda t: t.replace(",2,1,1,", ",5,1,1,"), "item_context.csv: item_id: lists 3 items but the log has item 5"),
    ],
)  # fmt: skip
def test_bad_files_are_one_line_errors(obd_root, edit, expected):
    path = obd_root / "random" / "all" / "all.csv"
    path.write_text(edit(LOG))
    with pytest.raises(DatasetError) as info:
        read_obd(obd_root)
    assert str(info.value).startswith(str(path.parent / expected.split(":")[0]) + ":")
    assert expected.split(": ", 1)[1] in str(info.value)


def test_missing_folder_and_unknown_campaign(tmp_path):
    with pytest.raises(DatasetError, match=r"path: no bts/men/men.csv under this folder"):
        read_obd(tmp_path, "bts", "men")
    with pytest.raises(DatasetError, match=r"campaign: unknown campaign 'kids'"):
        read_obd(tmp_path, "random", "kids")


def test_import_obd_command_writes_logs(obd_root, tmp_path):
    out = tmp_path / "obd.npz"
    result = CliRunner().invoke(
        cli, ["bandit", "import-obd", str(obd_root), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["n_rounds"] == 4 and summary["len_list"] == 2 and summary["click_rate"] == 0.5
    fb = load_feedback(out)
    assert fb.action.tolist() == [0, 1, 2, 2] and fb.action_context.shape == (3, 4)
    missing = CliRunner().invoke(
        cli, ["bandit", "import-obd", str(tmp_path / "nowhere"), "--out", str(out)]
    )
    assert missing.exit_code == 2
    assert "nowhere: path: no random/all/all.csv under this folder" in missing.output
