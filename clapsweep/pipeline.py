"""The five stages of the method as functions of (config, input artifact folders, output folder).

    teacher  train CLAP on a fraction of the teacher pairs
    embed    teacher embeddings of captions, teacher clips, wild clips and class prompts
    curate   a DU / DS / ADS Improvement-Set from those embeddings
    student  init from the teacher, train on the Improvement-Set with replay and soft labels
    eval     zero-shot accuracy per task (and per fold), retrieval on held-out captions

`run_stage(kind, config, inputs, out)` is what every backend calls. `config` is plain data,
parsed once into the kind's typed config (clapsweep.recipe.stage_config), which the stage
function gets; `inputs` maps a role to a finished artifact folder; `out` may hold a
checkpoint of an earlier, interrupted attempt, from which training resumes. Held-out caption
splits (Clotho evaluation, AudioCaps test, FSD50K eval) never train a teacher: they measure
retrieval.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from clapsweep import curate, evaluate
from clapsweep.config import (
    RETRIEVAL_SPLITS,
    TEACHER_SPLITS,
    FrontendConfig,
    ModelConfig,
    from_dict,
    merged_splits,
)
from clapsweep.data.cache import AudioCache
from clapsweep.data.custom import load_custom_task, task_prompt
from clapsweep.data.datasets import Pair, load_dataset, task_classes, teacher_pairs
from clapsweep.data.overlap import teacher_overlap_ids
from clapsweep.errors import UserError
from clapsweep.metrics import prompt_for
from clapsweep.models.clap import CLAP
from clapsweep.recipe import strategies
from clapsweep.recipe.stage_config import (
    CurateConfig,
    CustomTask,
    EmbedConfig,
    EvalConfig,
    StageData,
    StudentConfig,
    TeacherConfig,
    given,
    parse,
    stream_id,
)
from clapsweep.seeds import derive_seed
from clapsweep.store import atomic_file
from clapsweep.train import (
    TEXT_FEATURES,
    WEIGHTS,
    FrozenText,
    TrainData,
    load_weights,
    pick_device,
    train,
)

EMB_CHUNK = 4096  # clips per resumable embedding chunk


# ----------------------------------------------------------------------------- shared pieces


@functools.lru_cache(maxsize=32)
def manifest(name: str, root: str):
    """A dataset's manifest, read once per process (reading headers of every file is slow)."""
    return load_dataset(name, root)


@functools.lru_cache(maxsize=32)
def _custom_manifest(name: str, csv_path: str):
    return load_custom_task(name, csv_path)


def _data(data: StageData | dict) -> StageData:
    """A stage config's data section; tools and tests pass it as a plain dict."""
    return data if isinstance(data, StageData) else StageData.from_dict(data, "data")


def _custom(data: StageData) -> dict[str, CustomTask]:
    return data.custom_tasks or {}


def task_manifest(data: StageData | dict, name: str):
    """A task's manifest: a custom task's (data.custom_tasks) from its CSV, else the
    built-in dataset's under data.root."""
    data = _data(data)
    custom = _custom(data).get(name)
    if custom is not None:
        return _custom_manifest(name, custom.csv)
    return manifest(name, data.root)


def _prompt(data: StageData, task: str, label: str) -> str:
    custom = _custom(data).get(task)
    return task_prompt(given(custom.prompt, None), label) if custom else prompt_for(label)


def _cache(cfg: TeacherConfig | EmbedConfig | StudentConfig | EvalConfig) -> AudioCache:
    """The decoded-audio cache: $CLAPSWEEP_CACHE_DIR when the user exported one, else the
    sweep's or job's `runtime.cache_dir`, else none."""
    root = os.environ.get("CLAPSWEEP_CACHE_DIR") or cfg.runtime_or_empty.cache_dir
    return AudioCache(root or None, cfg.frontend.sample_rate)


def _model(
    frontend: FrontendConfig,
    model_cfg: ModelConfig,
    stream: str,
    weights: Path | None = None,
    pretrained_text: bool = True,
) -> CLAP:
    """The stage's model; random initial weights come from the stage's own stream, under a
    forked RNG, so no process-wide state decides them (or is changed by them)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(0, stream, "init"))
        model = CLAP(model_cfg, frontend, pretrained_text)
    if weights is not None:
        load_weights(model, weights)
    return model.to(pick_device())


def overlap_ids(data: StageData | dict) -> set[str]:
    """The teacher clips `data.exclude_overlap` drops: those sharing a source recording with a
    clip of one of `data.tasks` (none when the option is off)."""
    data = _data(data)
    if not data.exclude_overlap:
        return set()
    tasks = data.tasks or []
    manifests = {n: manifest(n, data.root) for n in data.teacher}
    manifests |= {n: task_manifest(data, n) for n in tasks}
    return teacher_overlap_ids(manifests, data.teacher, tasks)


def _teacher_records(data: StageData, name: str, dropped: set[str]) -> list:
    """The records of one teacher dataset that may train: its teacher splits, less `dropped`."""
    splits = merged_splits(given(data.splits, None), TEACHER_SPLITS).get(name, [])
    records = manifest(name, data.root).records
    return [r for r in records if r.fold in splits and r.id not in dropped]


def training_pairs(data: StageData | dict, seed: int) -> list[Pair]:
    """The teacher's training pairs: a seeded fraction of the teacher splits' pairs (after
    dropping the clips that overlap a task, when data.exclude_overlap is on)."""
    data = _data(data)
    dropped = overlap_ids(data)
    manifests = [
        dataclasses.replace(manifest(n, data.root), records=_teacher_records(data, n, dropped))
        for n in data.teacher
    ]
    return teacher_pairs(manifests, given(data.fraction, 1.0), seed)


def pair_counts(data: StageData | dict) -> dict[str, int]:
    """Teacher pairs per dataset (all of the teacher splits, before the fraction)."""
    data = _data(data)
    splits = merged_splits(given(data.splits, None), TEACHER_SPLITS)
    dropped = overlap_ids(data)
    return {
        n: sum(len(r.captions) for r in _teacher_records(data, n, dropped))
        for n in data.teacher
        if n in splits
    }


def held_out_records(data: StageData | dict) -> list:
    """The captioned clips of the retrieval splits (never in a teacher's training set)."""
    data = _data(data)
    splits = merged_splits(given(data.retrieval_splits, None), RETRIEVAL_SPLITS)
    return [
        r
        for n in data.teacher
        for r in manifest(n, data.root).records
        if r.fold in splits.get(n, []) and r.captions
    ]


def _save_npy(path: Path, array: torch.Tensor) -> None:
    with atomic_file(path, "wb") as f:
        np.save(f, array.numpy().astype(np.float16))


def _load_npy(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(path).astype(np.float32))


def _write_json(path: Path, obj) -> None:
    with atomic_file(path) as f:
        f.write(json.dumps(obj, indent=1))


# ----------------------------------------------------------------------------- stages


def _train(
    cfg: TeacherConfig | StudentConfig, model: CLAP, data: TrainData, out: Path, report, known=None
) -> dict:
    """Train with the stage's streams; a teacher (known is None) keeps its frozen-text table."""
    # Set by a backend that can be preempted (SLURM), in runtime: outside the stage key.
    every = cfg.runtime_or_empty.checkpoint_every or 0
    validate = cfg.runtime_or_empty.validate
    on_epoch = _validation(cfg, validate, report) if validate and report else None
    return train(
        model, data, cfg.train, out, _cache(cfg), cfg.frontend.clip_samples, report,
        checkpoint_every=every, stream=cfg.stream, text_features=known,
        keep_text_features=known is None, on_epoch=on_epoch,
    )  # fmt: skip


def _validation(cfg: StudentConfig, validate: dict, report) -> Callable:
    """A search trial's per-epoch check (runtime.validate = {task, folds}): zero-shot accuracy
    on the task's validation folds only, reported as validation_accuracy."""
    task, folds = validate["task"], [str(f) for f in validate["folds"]]
    manifest_ = task_manifest(cfg.data, task)
    records = [r for r in manifest_.records if r.fold in folds]
    classes = task_classes(manifest_)
    prompt = functools.partial(_prompt, cfg.data, task)
    cache = _cache(cfg)

    def on_epoch(epochs_done: int, model: CLAP) -> None:
        result = evaluate.zero_shot(
            model, records, cache, cfg.frontend.clip_samples, prompt=prompt, classes=classes
        )
        report({"epoch": epochs_done, "validation_accuracy": result["accuracy"], "task": task})

    return on_epoch


def teacher_model(config: TeacherConfig | dict) -> CLAP:
    """The teacher before training: `init` weights, else the towers with the audio encoder
    from model.audio_checkpoint when given (MS-CLAP's setup: CNN14 from PANNs AudioSet) and
    the text tower from model.text. Tools and tests may pass a plain dict with just
    frontend, model (and init, runtime)."""
    if isinstance(config, dict):
        frontend = from_dict(FrontendConfig, config.get("frontend"), "frontend")
        model_cfg = from_dict(ModelConfig, config.get("model"), "model")
        return _teacher(frontend, model_cfg, config.get("init", ""), stream_id(config))
    return _teacher(config.frontend, config.model, config.init, config.stream)


def _teacher(frontend: FrontendConfig, model_cfg: ModelConfig, init: str, stream: str) -> CLAP:
    if init:
        return _model(frontend, model_cfg, stream, Path(init))
    model = _model(frontend, model_cfg, stream)
    if model_cfg.audio_checkpoint:
        from clapsweep.models.interop import load_panns_cnn14

        check = frontend if model_cfg.audio_checkpoint_frontend == "match" else None
        load_panns_cnn14(model.audio_encoder.base, model_cfg.audio_checkpoint, check)
    return model


def stage_teacher(cfg: TeacherConfig, inputs: dict, out: Path, report=None) -> dict:
    data = cfg.data
    pairs = training_pairs(data, cfg.train.seed)
    model = teacher_model(cfg)
    result = _train(cfg, model, TrainData(main=pairs), out, report)
    # Files the adapters could not read never became pairs; say how many, per dataset.
    unreadable = {n: len(manifest(n, data.root).skipped) for n in data.teacher}
    extra = {"overlap_dropped_clips": len(overlap_ids(data))} if data.exclude_overlap else {}
    return {
        **result,
        "pairs": len(pairs),
        "unreadable_files": unreadable,
        "checkpoints": given(cfg.checkpoints, {}),
        **extra,
    }


def _embed_audio_chunked(model, paths, out: Path, name: str, cfg: EmbedConfig, report):
    """Embeds in chunks saved as they finish, so an interrupted pass resumes at the last one."""
    cache, samples = _cache(cfg), cfg.frontend.clip_samples
    parts = []
    for c, start in enumerate(range(0, len(paths), EMB_CHUNK)):
        part = out / f"{name}.part{c:05d}.npy"
        if not part.exists():
            emb, ok = evaluate.embed_audio(model, paths[start : start + EMB_CHUNK], cache, samples)
            emb[~ok] = float("nan")  # undecodable clips are marked and dropped by curation
            _save_npy(part, emb)
            if report:
                report({"embedded": min(start + EMB_CHUNK, len(paths)), "of": len(paths)})
        parts.append(_load_npy(part))
    full = torch.cat(parts) if parts else torch.zeros(0, model.dim)
    _save_npy(out / f"{name}.npy", full)
    for c in range(len(parts)):
        (out / f"{name}.part{c:05d}.npy").unlink()
    return full


def stage_embed(cfg: EmbedConfig, inputs: dict, out: Path, report=None) -> dict:
    data = cfg.data
    model = _model(cfg.frontend, cfg.model, cfg.stream, Path(inputs["teacher"]) / WEIGHTS)
    pairs = training_pairs(data, cfg.seed)
    _write_json(
        out / "captions.json", [{"id": p.id, "clip": p.record_id, "text": p.caption} for p in pairs]
    )
    _save_npy(out / "caption_emb.npy", evaluate.embed_texts(model, [p.caption for p in pairs]))
    clips = sorted({(p.record_id, p.path) for p in pairs})
    wild = [(r.id, r.path) for r in manifest(data.wild, data.root).records]
    for name, table in (("teacher_clips", clips), ("wild", wild)):
        _write_json(out / f"{name}.json", [{"id": i, "path": p} for i, p in table])
        _embed_audio_chunked(model, [p for _, p in table], out, f"{name}_emb", cfg, report)
    prompts = {}
    for task in data.tasks:
        prompts[task] = task_classes(task_manifest(data, task))
        emb = evaluate.embed_texts(model, [_prompt(data, task, c) for c in prompts[task]])
        _save_npy(out / f"prompt_emb_{task}.npy", emb)
    _write_json(out / "prompts.json", prompts)
    return {"captions": len(pairs), "teacher_clips": len(clips), "wild_clips": len(wild)}


class Embeddings:
    """Read side of an embed artifact: id tables and embedding rows."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.captions = json.loads((self.folder / "captions.json").read_text())
        self.caption_emb = _load_npy(self.folder / "caption_emb.npy")
        self.clip_path, self.clip_emb = {}, {}
        for name in ("teacher_clips", "wild"):
            table = json.loads((self.folder / f"{name}.json").read_text())
            emb = _load_npy(self.folder / f"{name}_emb.npy")
            for row, entry in enumerate(table):
                if not torch.isnan(emb[row]).any():
                    self.clip_path[entry["id"]] = entry["path"]
                    self.clip_emb[entry["id"]] = emb[row]
        self.caption_row = {c["id"]: i for i, c in enumerate(self.captions)}

    def wild(self) -> tuple[list[str], torch.Tensor]:
        ids = [e["id"] for e in json.loads((self.folder / "wild.json").read_text())]
        ids = [i for i in ids if i in self.clip_emb]
        emb = torch.stack([self.clip_emb[i] for i in ids]) if ids else torch.zeros(0, 1)
        return ids, emb

    def prompts(self, task: str) -> torch.Tensor:
        path = self.folder / f"prompt_emb_{task}.npy"
        if not path.exists():
            raise UserError(f"task {task} was not embedded; add it to data.tasks")
        return _load_npy(path)

    def pairs_of(self, caption_ids: list[str], clip_ids: list[str]) -> TrainData:
        """Training pairs with their teacher embeddings (for soft labels)."""
        pairs, audio, text = [], [], []
        for cap, clip in zip(caption_ids, clip_ids, strict=True):
            row = self.caption_row[cap]
            pairs.append(
                Pair(f"{cap}@{clip}", clip, self.clip_path[clip], self.captions[row]["text"])
            )
            audio.append(self.clip_emb[clip])
            text.append(self.caption_emb[row])
        return TrainData(main=pairs, main_teacher=(torch.stack(audio), torch.stack(text)))

    def teacher_set(self) -> TrainData:
        keep = [c for c in self.captions if c["clip"] in self.clip_emb]
        return self.pairs_of([c["id"] for c in keep], [c["clip"] for c in keep])

    def improvement(self, imp: curate.ImprovementSet) -> TrainData:
        return self.pairs_of(
            [imp.captions[i] for i in imp.caption_idx], [imp.clips[i] for i in imp.clip_idx]
        )


def stage_curate(cfg: CurateConfig, inputs: dict, out: Path, report=None) -> dict:
    name, task = cfg.strategy, given(cfg.task, "")  # parse checked the strategy's fields
    opts = {"chunk": given(cfg.chunk, curate.DEFAULT_CHUNK)}
    emb = Embeddings(inputs["embed"])
    imp = strategies.get(name).build(emb, cfg.to_dict(), opts)  # the registry reads dicts
    _check_custom_leakage(imp, emb, cfg.custom_tasks or {})
    imp.save(out / "improvement")
    return {**imp.counts(), "strategy": name, "task": task, "max_sims": imp.max_sims}


def _check_custom_leakage(imp, emb: Embeddings, custom: dict[str, CustomTask]) -> None:
    """No clip of a custom task may enter the Improvement-Set: neither by id nor by audio
    file (a custom task may list files that a teacher or wild dataset also holds)."""
    if not custom:
        return
    curate.check_no_task_audio(imp.clips, (*curate.TASK_DATASETS, *custom))
    task_files = {}
    for name, task in custom.items():
        for record in _custom_manifest(name, task.csv).records:
            task_files[os.path.realpath(record.path)] = name
    bad = [c for c in imp.clips if os.path.realpath(emb.clip_path.get(c, "")) in task_files]
    if bad:
        task = task_files[os.path.realpath(emb.clip_path[bad[0]])]
        raise curate.LeakageError(
            f"{len(bad)} clip(s) of custom task {task} would enter the Improvement-Set "
            f"(e.g. {bad[0]}, the same audio file); task audio must never train a student"
        )


def stage_student(cfg: StudentConfig, inputs: dict, out: Path, report=None) -> dict:
    emb = Embeddings(inputs["embed"])
    imp = curate.require_nonempty(
        curate.ImprovementSet.load(Path(inputs["improvement"]) / "improvement")
    )
    data = emb.improvement(imp)
    if "replay" in inputs:  # a strategy that replays its upstream set (ADS: the DS set)
        replay = emb.improvement(curate.ImprovementSet.load(Path(inputs["replay"]) / "improvement"))
    else:  # DU and DS replay the teacher's training set
        replay = emb.teacher_set()
    data.replay, data.replay_teacher = replay.main, replay.main_teacher
    data.teacher_pairs = len(emb.captions)  # the authors' epoch: the teacher set's batches
    model = _model(cfg.frontend, cfg.model, cfg.stream, Path(inputs["teacher"]) / WEIGHTS)
    known = FrozenText.load(Path(inputs["teacher"]) / TEXT_FEATURES)
    result = _train(cfg, model, data, out, report, known)
    return {**result, "pairs": len(data.main), "replay_pairs": len(data.replay)}


def stage_eval(cfg: EvalConfig, inputs: dict, out: Path, report=None) -> dict:
    frontend, data = cfg.frontend, cfg.data
    if cfg.msclap_checkpoint:  # the checkpoint holds every weight: build the towers, offline
        from clapsweep.models.interop import load_msclap

        model = _model(frontend, cfg.model, cfg.stream, pretrained_text=False)
        load_msclap(model, cfg.msclap_checkpoint, frontend)
    else:  # no model input: the untrained towers (a chance-level baseline)
        weights = Path(inputs["model"]) / WEIGHTS if "model" in inputs else None
        model = _model(frontend, cfg.model, cfg.stream, weights)
    cache = _cache(cfg)
    result = {}
    for task in data.tasks:
        prompt = functools.partial(_prompt, data, task)
        # Restricted to some folds, the classes are still all the task's.
        classes = task_classes(task_manifest(data, task)) if cfg.restricts_folds() else None
        result[task] = evaluate.zero_shot(
            model, eval_records(cfg, task), cache, frontend.clip_samples, prompt=prompt,
            classes=classes,
        )  # fmt: skip
        if report:
            report({"task": task, "accuracy": result[task]["accuracy"]})
    held = held_out_records(data) if data.teacher else []
    if held:
        result["retrieval"] = evaluate.retrieval(model, held, cache, frontend.clip_samples)
    if cfg.restricts_folds():  # only then: the metrics of every other eval stay as they were
        result["folds_evaluated"] = {t: list(result[t]["per_fold"]) for t in data.tasks}
    _write_json(out / "metrics.json", result)
    return result


def eval_records(cfg: EvalConfig, task: str) -> list:
    """The clips of `task` the eval stage evaluates: those of the folds `cfg.folds` names
    for it (all when it names none), less those of `cfg.exclude_folds`."""
    records = task_manifest(cfg.data, task).records
    kept = [r for r in records if cfg.keeps_fold(task, r.fold)]
    if records and not kept:
        folds = sorted({r.fold for r in records})
        raise UserError(
            f"eval stage config: folds / exclude_folds leave no clip of {task} to evaluate; "
            f"its folds are: {', '.join(folds)}"
        )
    return kept


STAGES: dict[str, Callable] = {
    "teacher": stage_teacher,
    "embed": stage_embed,
    "curate": stage_curate,
    "student": stage_student,
    "eval": stage_eval,
}


@contextlib.contextmanager
def _threads(n: int):
    """The stage's intra-op thread count (CPU reductions depend on it), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_stage(
    kind: str, config: dict, inputs: dict, out: Path, report: Callable[[dict], None] | None = None
) -> dict:
    """Run stage `kind`: `config` is parsed (and checked) once, before `out` is made."""
    if kind not in STAGES:
        raise ValueError(f"unknown stage kind {kind!r}")
    cfg = parse(kind, config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _threads(cfg.runtime_or_empty.threads or 1):
        return STAGES[kind](cfg, {k: Path(v) for k, v in inputs.items()}, out, report)
