"""Pure graph engine: clock, node records, merge rules, oplog window, query engine. No I/O."""
