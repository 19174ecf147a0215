# An 18 MB Python command component (componentize-py): `just bench` times
# its cached start under Hive and under `wasmtime run`.
from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        print("hello from python")
