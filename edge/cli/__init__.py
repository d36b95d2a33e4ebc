"""The ``edge`` command. The only place that prints, and the only place that exits.

Every ``EdgeError`` becomes one line (and a hint) on stderr and its exit code
(see ``edge.core.errors``); anything else is an internal error, exit 70. ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from edge import __version__
from edge.core import catalog
from edge.cli import remote
from edge.cli import terminal as render
from edge.core.errors import EdgeError, UsageError

INTERNAL_ERROR = 70
out = Console()
err = Console(stderr=True)


class _Main(click.Group):
    """Maps errors to messages and exit codes, in one place."""

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug") or "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except EdgeError as exc:
            if debug:
                raise
            err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                err.print(f"[dim]hint:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if debug:
                raise
            err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False, soft_wrap=True)
            err.print("[dim]hint:[/] run again with --debug for the traceback, and report it", highlight=False)
            ctx.exit(INTERNAL_ERROR)


@click.group(cls=_Main)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(__version__, prog_name="edge")
def main(debug: bool) -> None:
    """Put small models on small devices: export, validate, inspect."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        # Converter dependencies warn at import about GPU kernels this CPU-only tool never uses.
        for name in ("torchao", "torch.utils._pytree", "jax._src.xla_bridge"):
            logging.getLogger(name).setLevel(logging.ERROR)


@main.group()
def targets() -> None:
    """Device classes edge knows (data files in edge/targets)."""


@targets.command("list")
def targets_list() -> None:
    """List every target."""
    out.print(render.targets_table([catalog.load_target(n) for n in catalog.target_names()]))


@targets.command("show")
@click.argument("name")
def targets_show(name: str) -> None:
    """Show a target and its resolved profile."""
    target = catalog.load_target(name)
    out.print(render.target_detail(target, catalog.profile_for(target)))


@main.command()
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("/"),
              help="Read /proc and /sys below this folder (a recorded tree).")
@click.option("--json", "as_json", is_flag=True, help="Print the detection as JSON.")
@remote.options
def detect(root: Path, as_json: bool, **remote_params) -> None:
    """Say which target this machine (or each --device) is, and why."""
    from edge.device.detect import detect as run_detect

    if remote.wanted(remote_params):
        return remote.detect(remote_params, as_json, out, err)

    found = run_detect(root)
    if as_json:
        facts = found.facts
        out.print_json(json.dumps({
            "target": found.target, "exact": found.exact, "reasons": found.reasons, "note": found.note,
            "arch": facts.arch, "board": facts.board, "cpu_model": facts.cpu_model, "cores": len(facts.cores),
            "heterogeneous": facts.heterogeneous, "memory_mb": facts.memory_mb,
        }))
    else:
        out.print(render.detection(found))


@main.command()
@click.argument("source")
@click.option("-t", "--target", "target_name", required=True, help="Target name, or 'auto' to detect this machine.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Bundle folder to write.")
@click.option("--profile", "profile_name", help="Profile name or .toml file (default: the target's own).")
@click.option("--input", "inputs", multiple=True, metavar="SPEC", help="Input signature: name:dtype[dims][:low..high]. Repeat per input.")
@click.option("--output-name", "outputs", multiple=True, metavar="NAME", help="Name an output. Repeat per output.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=N", help="Size of a dynamic axis for validation, e.g. sequence=128.")
@click.option("--task", help="Transformers task (default: from the config's architectures).")
@click.option("--sample-inputs", type=click.Path(path_type=Path), help=".npz with one array per input, used for validation.")
@click.option("--calib-data", type=click.Path(path_type=Path), help="Calibration data: .npz of inputs, a folder of images, or a .txt of sentences.")
@click.option("--eval-data", type=click.Path(path_type=Path), help="Evaluation data for the accuracy gate (same forms; .npz may hold 'labels').")
@click.option("--preprocess", metavar="SPEC", help="For image folders: scale=1/255,mean=a/b/c,std=a/b/c.")
@click.option("--variant", "variants", multiple=True, metavar="NAME", help="Build only this profile variant (repeat; fp32 is always built).")
@click.option("--format", "formats", default="", metavar="onnx,tflite", help="Build only artifacts of these formats (default: all the profile has).")
@click.option("--gate-kind", type=click.Choice(["classifier", "embedding", "generic"]), help="How the gate compares (default: from the task or outputs).")
@click.option("--max-top1-drop", type=float, help="Gate budget for classifiers, in percentage points.")
@click.option("--min-cosine", type=float, help="Gate budget for embeddings and generic outputs.")
@click.option("--min-snr", type=float, help="Gate budget for generic outputs, in dB.")
@click.option("--max-perplexity-increase", type=float, help="Gate budget for language models, in % over fp32.")
@click.option("--min-next-token-agreement", type=float, help="Gate budget for language models, in % of positions.")
@click.option("--strict/--no-strict", default=True, help="Fail when validation or a gate misses its budget (default), or keep what passed.")
@click.option("--simplify/--no-simplify", default=True, help="Simplify the graph with onnxslim where outputs stay equal.")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
def export(source, target_name, output, profile_name, inputs, outputs, dims, task, sample_inputs, calib_data, eval_data,
           preprocess, variants, formats, gate_kind, max_top1_drop, min_cosine, min_snr, max_perplexity_increase,
           min_next_token_agreement, strict, simplify, force) -> None:
    """Export SOURCE (a .onnx file, a transformers folder, or file.py:factory) into a validated bundle."""
    from edge.build.export import ExportOptions, export as run_export

    target = _resolve_target(target_name)
    profile = catalog.load_profile(profile_name) if profile_name else catalog.profile_for(target)
    options = ExportOptions(
        output=output, inputs=inputs, outputs=outputs, dims=_parse_dims(dims), task=task,
        sample_inputs=sample_inputs, calib_data=calib_data, eval_data=eval_data, preprocess=preprocess,
        variants=tuple(variants), formats=tuple(f.strip() for f in formats.split(",") if f.strip()), strict=strict, force=force, simplify=simplify,
        gate={"kind": gate_kind, "max_top1_drop": max_top1_drop, "min_cosine": min_cosine, "min_snr_db": min_snr,
              "max_perplexity_increase": max_perplexity_increase, "min_next_token_agreement": min_next_token_agreement},
    )
    started = time.perf_counter()
    with err.status("starting") as status:
        options = _with_progress(options, status, started)
        manifest = run_export(source, target, profile, options)
    err.print(f"[green]done[/] in {time.perf_counter() - started:.1f} s", highlight=False)
    out.print(render.manifest(manifest, str(output)))


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(bundle: Path, as_json: bool) -> None:
    """Print what a bundle holds and how it was validated."""
    from edge.core.bundle import read_manifest

    manifest = read_manifest(bundle)
    if as_json:
        out.print_json(json.dumps(manifest.to_json()))
    else:
        out.print(render.manifest(manifest, str(bundle)))


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--input", "input_path", type=click.Path(path_type=Path), help="An .npz (one array per input), an .npy, or an image.")
@click.option("--text", multiple=True, help="A sentence (repeat for a batch); needs a bundle with a tokenizer.")
@click.option("--prompt", help="A language model: generate from this prompt, streamed to the terminal.")
@click.option("--max-new-tokens", type=int, default=64, show_default=True, help="With --prompt: tokens to generate at most.")
@click.option("--temperature", type=float, default=0.0, show_default=True, help="With --prompt: 0 is greedy; above 0 samples.")
@click.option("--top-k", type=int, default=0, help="With --prompt and --temperature: sample among the k most likely.")
@click.option("--top-p", type=float, default=1.0, help="With --prompt and --temperature: sample within this probability mass.")
@click.option("--seed", type=int, help="With --prompt and --temperature: the sampling seed (same seed, same text).")
@click.option("--stop", multiple=True, help="With --prompt: end the text before this string (repeat).")
@click.option("--chat", is_flag=True, help="With --prompt: wrap it in the model's chat template.")
@click.option("--runtime", type=click.Choice(catalog.RUNTIMES), help="Use this runtime.")
@click.option("--threads", type=int, help="Threads (default: the profile's).")
@click.option("--target", default="auto", show_default=True, help="Run a bundle built for another target anyway by naming it.")
@click.option("--save", type=click.Path(path_type=Path), help="Write the outputs to this .npz.")
@remote.options
def run(bundle: Path, input_path: Path | None, text: tuple[str, ...], prompt: str | None, max_new_tokens: int,
        temperature: float, top_k: int, top_p: float, seed: int | None, stop: tuple[str, ...], chat: bool,
        runtime, threads, target, save, **remote_params) -> None:
    """Run BUNDLE (or a .onnx/.tflite file) once on an input and print the outputs, or generate from --prompt."""
    import edge
    from edge.device import inputs as raw

    if sum(map(bool, (input_path, text, prompt))) != 1:
        raise UsageError("give exactly one of --input FILE, --text SENTENCE or --prompt TEXT")
    if remote.wanted(remote_params):
        forwarded = _forward(click.get_current_context(), exclude={"bundle", "input_path", "save"})
        return remote.run(bundle, {**remote_params, "input_path": input_path, "save": save}, forwarded, out, err)
    model = edge.load(bundle, target=target, runtime=runtime, threads=threads)
    for note in model.choice.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if prompt is not None:
        return _generate(model, prompt, max_new_tokens, stop=stop, chat=chat, temperature=temperature, top_k=top_k,
                         top_p=top_p, seed=seed)
    if getattr(model, "generation", None) is not None:
        raise UsageError("this bundle is a language model", hint='give --prompt "..."')
    preprocessing = _preprocessing(bundle)
    feeds = raw.from_text(list(text), model, bundle, preprocessing) if text else raw.from_file(input_path, model, preprocessing)
    started = time.perf_counter()
    outputs = model.run(feeds)
    elapsed = (time.perf_counter() - started) * 1000
    err.print(f"{model.choice.artifact} on {model.choice.runtime} {model.choice.runtime_version}, "
              f"{model.choice.threads} threads: {elapsed:.2f} ms (one call, not a benchmark: see edge profile)", highlight=False)
    out.print(render.outputs(outputs))
    if save:
        import numpy as np

        np.savez(save, **outputs)


def _generate(model, prompt: str, max_new_tokens: int, **options) -> None:
    """Stream a language model's text to stdout as it is decoded; the figures go to stderr."""
    if getattr(model, "generation", None) is None:
        raise UsageError("--prompt needs a language-model bundle", hint="give --input or --text for this one")
    started = time.perf_counter()
    for piece in model.stream(prompt, max_new_tokens, **options):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    elapsed = time.perf_counter() - started
    c = model.choice
    err.print(f"{c.artifact} on {c.runtime} {c.runtime_version}, {c.threads} threads: {elapsed:.2f} s in all "
              "(not a benchmark: edge profile measures time to first token and tokens/s)", highlight=False)


@main.command("profile")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--artifact", "artifacts", multiple=True, metavar="NAME", help="Only this artifact of the bundle (variant or file name; repeat).")
@click.option("--target", default="auto", show_default=True, help="Target whose energy meters to use; 'auto' detects this machine.")
@click.option("--runtime", type=click.Choice(catalog.RUNTIMES), help="Use this runtime (default: the profile's first installed).")
@click.option("--threads", metavar="N|sweep", help="Threads, or 'sweep' for 1..N (and big vs all cores on big.LITTLE). Default: the profile's.")
@click.option("--runs", type=int, help="Timed runs per configuration (default 200).")
@click.option("--duration", type=float, help="Seconds of timed runs per configuration, instead of --runs.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs before the timed ones.")
@click.option("--input", "input_path", type=click.Path(path_type=Path), help="An .npz (one array per input), an .npy or an image (default: random inputs).")
@click.option("--dim", "dims", multiple=True, metavar="NAME=N", help="Size of a dynamic axis for the random inputs (default: the size the bundle was exported or validated at).")
@click.option("--prompt-tokens", type=click.IntRange(1), default=128, show_default=True, help="Language models: prompt length for the time to first token.")
@click.option("--new-tokens", type=click.IntRange(2), default=64, show_default=True, help="Language models: tokens generated per generation.")
@click.option("--meter", help="Use this energy meter instead of the target's list.")
@click.option("--allow-estimate", is_flag=True, help="Try the estimating meter last (its figures are labelled as estimates).")
@click.option("--idle", type=float, default=2.0, show_default=True, help="Seconds of idle baseline before each timed loop, when a meter is found.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="JSON result to write (default: profile-NAME.json here); with --device or --fleet, a folder.")
@click.option("--sysfs-root", type=click.Path(file_okay=False, path_type=Path), default=Path("/"), hidden=True)
@remote.options
def profile_command(path, artifacts, target, runtime, threads, runs, duration, warmup, input_path, dims, prompt_tokens,
                    new_tokens, meter, allow_estimate, idle, output, sysfs_root, **remote_params) -> None:
    """Measure latency, memory and energy of PATH (a bundle, or a .onnx/.tflite file), each configuration in a fresh process.

    With --device or --fleet it runs on each device instead, and -o names a folder with one JSON per device.
    """
    from dataclasses import replace

    from rich.progress import Progress, TimeElapsedColumn

    from edge.device import profiler
    from edge.cli.profile_table import render as profile_table

    if remote.wanted(remote_params):
        forwarded = _forward(click.get_current_context(), exclude={"path", "input_path", "output", "sysfs_root"})
        return remote.profile(path, {**remote_params, "input_path": input_path, "output": output}, forwarded, out, err)
    if output is not None and output.is_dir():
        raise UsageError(f"{output} is a folder", hint="-o names the JSON file to write (a folder only with --device or --fleet)")

    options = profiler.ProfileOptions(
        target=target, runtime=runtime, threads=profiler.parse_threads(threads), runs=runs, duration_s=duration,
        warmup=warmup, input_file=input_path, artifacts=artifacts, meter=meter, allow_estimate=allow_estimate,
        idle_s=idle, root=sysfs_root, dims=_parse_dims(dims), prompt_tokens=prompt_tokens, new_tokens=new_tokens)
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("planning", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=escape(label))
            if not err.is_terminal:  # a log or a remote host sees one line per configuration instead of a bar
                err.print(f"[{done}/{total}] {escape(label)}", highlight=False, soft_wrap=True)

        result = profiler.profile(path, replace(options, on_progress=progress))
    out.print(profile_table(result, out.width))
    written = result.write(output or profiler.default_output(path))
    err.print(f"wrote {written}", highlight=False, soft_wrap=True)
    if result.best is None:
        raise EdgeError("no configuration could be measured", hint=f"the errors are listed above and in {written}")


@main.command("tune")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--objective", type=click.Choice(["latency", "memory", "energy"]), default="latency", show_default=True,
              help="What to minimise: median latency (per token for a language model), peak memory, or energy per inference.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Stop measuring after this long; the choice is then the best of what was measured.")
@click.option("--fresh", is_flag=True, help="Discard the measurements of an earlier run instead of resuming it.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=N", help="Size of a dynamic axis (default: the size the bundle was exported at).")
@click.option("--prompt-tokens", type=click.IntRange(1), default=128, show_default=True,
              help="Language models: prompt length read before the first token (each round is one generation).")
@click.option("--sysfs-root", type=click.Path(file_okay=False, path_type=Path), default=Path("/"), hidden=True)
@remote.options
def tune_command(bundle, objective, max_minutes, fresh, dims, prompt_tokens, sysfs_root, **remote_params) -> None:
    """Measure BUNDLE's configurations here (or on --device) and keep the best in it for this machine's target.

    Every artifact that passed its gate, in every runtime that runs it, at every thread count, then
    the runtime settings that matter; clearly slower configurations are dropped early. Ctrl-C or the
    time limit keep what was measured: the same command resumes.
    """
    from rich.progress import BarColumn, Progress, TextColumn

    from edge.cli.tune_table import render as tune_table, summary
    from edge.device.tune import TuneOptions, tune

    if remote.wanted(remote_params):
        forwarded = _forward(click.get_current_context(), exclude={"bundle", "sysfs_root"})
        return remote.tune(bundle, remote_params, forwarded, out, err)
    options = TuneOptions(objective=objective, max_minutes=max_minutes, fresh=fresh, dims=_parse_dims(dims),
                          prompt_tokens=prompt_tokens, root=sysfs_root)
    limit = max_minutes * 60
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[left]}"))
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("planning", total=limit, left="")

        def progress(state: dict) -> None:
            left = state["seconds_left"]
            text = f"{int(left // 60)}:{int(left % 60):02d} left of the limit · {state['measured']} measured"
            bar.update(task, completed=limit - left, description=escape(f"{state['stage']}: {state['label']}"), left=text)
            if not err.is_terminal:
                err.print(escape(f"[{state['stage']}] {state['label']} ({text})"), highlight=False, soft_wrap=True)

        try:
            outcome = tune(bundle, replace(options, on_progress=progress))
        except KeyboardInterrupt:
            err.print(f"interrupted: what was measured is kept in {bundle}/tune/; run the same command to go on",
                      highlight=False, soft_wrap=True)
            raise SystemExit(130)
    out.print(tune_table(outcome.table))
    for line in summary(outcome.table):
        out.print(escape(line), highlight=False, soft_wrap=True)
    for note in outcome.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if outcome.choice is None:
        raise EdgeError("no configuration could be measured", hint=f"the errors are in {outcome.path}")
    err.print(f"wrote {outcome.path} and the tuned choice for {outcome.table['target']} into {bundle}/manifest.json "
              "(edge.load follows it on this machine class)", highlight=False, soft_wrap=True)


@main.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="HTML file to write (replaced atomically).")
def report_command(results: tuple[Path, ...], output: Path) -> None:
    """Write one self-contained HTML page comparing RESULTS (JSON files from edge profile)."""
    from edge.cli import report

    docs = [report.load(path) for path in results]
    written = report.write(report.render_html(docs, names=[path.name for path in results]), output)
    out.print(str(written), highlight=False, soft_wrap=True)


def _preprocessing(bundle: Path) -> dict:
    if not bundle.is_dir():
        return {}
    from edge.core.bundle import read_manifest

    return read_manifest(bundle).preprocessing


def _resolve_target(name: str) -> catalog.Target:
    if name != "auto":
        return catalog.load_target(name)
    from edge.device.detect import detect as run_detect

    found = run_detect("/")
    err.print(f"target: [bold]{found.target}[/] (detected: {escape('; '.join(found.reasons))})", highlight=False)
    if found.note:
        err.print(f"[yellow]note:[/] {escape(found.note)}", highlight=False)
    return catalog.load_target(found.target)


def _parse_dims(items: tuple[str, ...]) -> dict[str, int]:
    dims = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit() or int(value) < 1:
            raise UsageError(f"bad --dim '{item}'", hint="write NAME=N with N >= 1, e.g. --dim sequence=128")
        dims[name] = int(value)
    return dims


def _forward(ctx: click.Context, exclude: set[str]) -> list[str]:
    """The options the user gave, as an argument list for the same command on a device (remote ones left out)."""
    from click.core import ParameterSource

    local = {"devices", "fleet", "bootstrap", "accept_new_host_keys", "ssh_config", "timeout_s", "debug"} | exclude
    argv: list[str] = []
    for param in ctx.command.params:
        if param.name in local or not isinstance(param, click.Option):
            continue
        if ctx.get_parameter_source(param.name) not in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        value = ctx.params[param.name]
        if param.is_flag:
            argv += [param.opts[0]] if value else list(param.secondary_opts[:1])
            continue
        for item in value if param.multiple else (value,):
            argv += [param.opts[0], str(item)]
    return argv


def _with_progress(options, status, started: float):
    from dataclasses import replace

    def step(message: str) -> None:
        err.print(f"[dim]{time.perf_counter() - started:6.1f} s[/] {escape(message)}", highlight=False)
        status.update(message)

    return replace(options, on_progress=step)


if __name__ == "__main__":
    main()
