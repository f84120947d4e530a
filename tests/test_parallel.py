import pytest

from svdinst.errors import SvdinstError
from svdinst.parallel import current_process, shard


def test_shards_partition_the_items_in_order():
    items = list(range(11))
    parts = [shard(items, rank, 3) for rank in range(3)]
    assert parts[0] == [0, 3, 6, 9]
    assert sorted(x for part in parts for x in part) == items  # every item once, none twice


def test_current_process_reads_the_launcher_environment():
    assert current_process({}) == (0, 1)
    assert current_process({"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    with pytest.raises(SvdinstError, match="WORLD_SIZE=2"):
        current_process({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(SvdinstError, match="rank 3"):
        shard([1, 2], 3, 2)
