"""relicrl: ReLIC, in-context RL over whole trials (Sink-KV transformer, PPO with partial updates).

Modules: `model` (the policies), `tokens` (what a step's token holds), `trainer`, `evaluate`, `agent` (a
policy acting one observation at a time), `report`, `checkpoint`, `configs`, `cli` (the `relic` command).
Importing the package imports nothing heavy; torch comes with the modules that need it.
"""
