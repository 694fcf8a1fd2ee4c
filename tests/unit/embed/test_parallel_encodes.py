"""How many embed encodes one process runs at once."""

from pixsearch.config import Settings
from pixsearch.embed.batch import parallel_encodes


def test_by_default_a_process_encodes_once_per_model_threads_worth_of_cores():
    cores = 2
    assert parallel_encodes(Settings(torch_threads=2), cores) == 1
    assert parallel_encodes(Settings(torch_threads=1), cores) == 2
    assert parallel_encodes(Settings(torch_threads=4), cores) == 1
    assert parallel_encodes(Settings(torch_threads=2, embed_parallel_encodes=3), cores) == 3
