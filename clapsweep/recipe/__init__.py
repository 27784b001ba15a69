"""The paper's method: the sweep file's schema (spec, axes, search_spec), the plan it expands
into (plan; the engine in clapsweep.sweep runs it), the typed stage configs, and registries of
strategies, tasks and tables that the sweep, the stages and the reports read (a new one is an
entry here plus its function)."""
