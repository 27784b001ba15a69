"""The paper's method as data: registries of strategies, tasks and tables that the sweep,
the stages and the reports read (a new one is an entry here plus its function)."""
