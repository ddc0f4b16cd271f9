//! The stable diagnostic codes. Each code is `rora::<pass>::<name>` and carries What / Why / Example / Fix
//! documentation, printed by `rora explain <code>`. Codes are never renamed or reused; a new problem
//! gets a new code. A test checks every code is documented and every name is unique.

/// Documentation of one code.
#[derive(Debug, Clone, Copy)]
pub struct CodeDoc {
    pub name: &'static str,
    pub what: &'static str,
    pub why: &'static str,
    pub example: &'static str,
    pub fix: &'static str,
}

macro_rules! codes {
    ($( $var:ident $name:literal { $what:literal, $why:literal, $example:literal, $fix:literal } )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($var,)* }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$var,)*];

            pub fn name(self) -> &'static str {
                match self { $(Code::$var => $name,)* }
            }

            pub fn doc(self) -> CodeDoc {
                match self {
                    $(Code::$var => CodeDoc { name: $name, what: $what, why: $why, example: $example, fix: $fix },)*
                }
            }
        }
    };
}

codes! {
    InvalidUtf8 "rora::syntax::invalid-utf8" {
        "The pipeline file is not valid UTF-8.",
        "KDL documents are UTF-8 text; a binary or mis-encoded file cannot be parsed.",
        "a file saved as UTF-16 or Latin-1, or a .gguf passed by mistake",
        "Save the file as UTF-8, or pass the .kdl pipeline rather than a data file."
    }
    Kdl "rora::syntax::kdl" {
        "The file is not valid KDL 2.",
        "The pipeline language is KDL 2; the parser stops at the first malformed construct.",
        "model \"base\" { hub \"org/name\" revision= }",
        "Fix the syntax at the span; see https://kdl.dev for the grammar (strings need quotes, `#true`/`#false` are booleans)."
    }
    TooDeep "rora::syntax::too-deep" {
        "Children blocks are nested deeper than rora accepts.",
        "Pipelines need at most a few levels; very deep nesting would exhaust the parser's stack.",
        "a { a { a { ... } } } nested thousands of times",
        "Flatten the document: stages are top-level nodes with one level of children."
    }
    TooLarge "rora::syntax::too-large" {
        "The pipeline file is larger than rora accepts.",
        "A pipeline is a short description of stages; megabytes of KDL are almost certainly a mistake.",
        "a data file passed as a pipeline",
        "Pass the .kdl pipeline; generate sweeps with `sweep` instead of writing out every stage."
    }
    UnknownNode "rora::shape::unknown-node" {
        "A top-level node is not a stage kind, `sweep`, `zip` or `param`.",
        "Each top-level node declares a stage; an unknown name is usually a typo.",
        "adaptor \"ad\" model=\"base\" { rank 8 }",
        "Use one of model, prune, data, adapter, train, merge, eval, report, sweep, zip, param."
    }
    UnknownChild "rora::shape::unknown-child" {
        "A stage has a child node its kind does not define.",
        "Every option of a stage kind is declared in the schema registry; unknown options would be silently ignored otherwise.",
        "adapter \"ad\" model=\"base\" { rnak 8 }",
        "Use the suggested name, or run `rora schema <kind>` to list the options."
    }
    UnknownProperty "rora::shape::unknown-property" {
        "A node has a `key=value` property its schema does not define.",
        "Unknown properties would be silently ignored and the run would not do what the file says.",
        "train \"ft\" adapter=\"ad\" dataa=\"cs\"",
        "Use the suggested property, or run `rora schema <kind>`."
    }
    MissingName "rora::shape::missing-name" {
        "A stage has no name (its first argument).",
        "Stages are referenced by name from other stages, plans and the cache.",
        "model { hub \"org/name\" }",
        "Give the stage a name: model \"base\" { ... }."
    }
    InvalidName "rora::shape::invalid-name" {
        "A stage or sweep name contains characters rora reserves.",
        "Names appear in job labels like `ft@rank=8,method=lora`, so `@`, `,`, `=` and spaces are not allowed.",
        "train \"ft@1\" ...",
        "Use letters, digits, `-`, `_` and `.`."
    }
    Arity "rora::shape::arity" {
        "A node has the wrong number of arguments.",
        "Each option takes a declared number of values; extra values would be ignored.",
        "rank 8 16",
        "Give the number of values the schema asks for; to try several values use `sweep`."
    }
    WrongType "rora::shape::wrong-type" {
        "A value has the wrong type.",
        "Options are typed (integer, number, string, boolean); a string where a number is expected is usually a quoting mistake.",
        "rank \"8\"",
        "Write the value with the expected type: numbers unquoted, strings quoted, booleans as #true / #false."
    }
    OutOfRange "rora::shape::out-of-range" {
        "A number is outside the range the option allows.",
        "Values such as rank 0, dropout 1.0 or a negative learning rate cannot train.",
        "dropout 1.5",
        "Use a value inside the range in the message (rank >= 1, 0 <= dropout < 1, lr > 0, ...)."
    }
    InvalidChoice "rora::shape::invalid-choice" {
        "A string is not one of the values the option allows.",
        "Enumerated options (method, scaling, template, dtype, ...) have a fixed set of values.",
        "method \"lorra\"",
        "Use the suggested value or one of the listed values."
    }
    MissingChild "rora::shape::missing-child" {
        "A required option of a stage is missing.",
        "Some options have no sensible default (an adapter's rank, an eval's tasks).",
        "adapter \"ad\" model=\"base\" { alpha 16 }",
        "Add the option; `rora schema <kind>` marks required options."
    }
    MissingProperty "rora::shape::missing-property" {
        "A required `key=value` property is missing.",
        "Stages name their inputs through properties (model=, data=, adapter=, from=).",
        "train \"ft\" data=\"cs\" { steps 10 }",
        "Add the property, e.g. train \"ft\" adapter=\"ad\" data=\"cs\"."
    }
    DuplicateChild "rora::shape::duplicate-child" {
        "An option that may appear once appears twice.",
        "With two values rora cannot know which one you meant.",
        "rank 8; rank 16",
        "Keep one; to try both use `sweep rank 8 16` and `rank (sweep)\"rank\"`."
    }
    DuplicateProperty "rora::shape::duplicate-property" {
        "A property is given twice on the same node.",
        "KDL keeps the last one; rora rejects it because the first is then silently lost.",
        "batch 16 micro=4 micro=2",
        "Keep one of them."
    }
    UnexpectedBlock "rora::shape::unexpected-block" {
        "A node has a children block where none is allowed.",
        "Options are leaves; a block under them would be ignored.",
        "rank 8 { x 1 }",
        "Remove the block."
    }
    BadAnnotation "rora::shape::bad-annotation" {
        "A value has a type annotation rora does not know.",
        "Annotations select variables: (sweep)\"name\" or (param)\"name\"; other annotations mean nothing here.",
        "rank (swep)\"rank\"",
        "Use (sweep)\"name\" for a sweep axis or (param)\"name\" for a parameter."
    }
    VarNotAllowed "rora::shape::sweep-not-allowed" {
        "A variable is used where only a literal may stand.",
        "Stage names, stage references and sweep values define the job graph itself and cannot vary.",
        "train \"ft\" adapter=(sweep)\"ad\"",
        "Write the literal value; sweep the options inside the stages instead."
    }
    EmptySweep "rora::shape::empty-sweep" {
        "A sweep or zip axis has no values.",
        "An axis without values would produce zero jobs.",
        "sweep rank",
        "List at least one value: sweep rank 4 8 16."
    }
    DuplicateStage "rora::resolve::duplicate-stage" {
        "Two stages have the same name.",
        "Stage names identify jobs, cache entries and references.",
        "model \"base\" { ... }\\nmodel \"base\" { ... }",
        "Rename one of them."
    }
    UnknownStage "rora::resolve::unknown-stage" {
        "A property refers to a stage that does not exist.",
        "References build the dependency graph; a typo would leave a stage without its input.",
        "adapter \"ad\" model=\"bsae\"",
        "Use the suggested name or declare the stage."
    }
    WrongStageKind "rora::resolve::wrong-stage-kind" {
        "A reference points at a stage of the wrong kind.",
        "Each input expects a particular kind of output (a model, a dataset, a trained adapter, evaluation results).",
        "eval \"cs\" model=\"cs170k\"  // cs170k is a data stage",
        "Point the property at a stage of one of the listed kinds."
    }
    TrainNeedsAdapter "rora::resolve::train-needs-adapter" {
        "A train stage's adapter= does not name an adapter stage.",
        "rora trains adapters only; the base model stays frozen.",
        "train \"ft\" adapter=\"base\" data=\"cs\"",
        "Declare an adapter stage on the model and point adapter= at it."
    }
    MergeNeedsTrained "rora::resolve::merge-needs-trained" {
        "A merge stage's from= names neither a train stage nor an adapter stage that loads a trained adapter (path / hub).",
        "Merging an untrained adapter (B = 0) gives back the base model; merging needs trained weights.",
        "merge \"m\" from=\"ad\"  // ad is adapter \"ad\" model=\"base\" { rank 8 }",
        "Point from= at the train stage that trains the adapter, or load a trained adapter with path / hub."
    }
    Cycle "rora::resolve::cycle" {
        "Stages depend on each other in a cycle.",
        "A job can only run after its inputs; a cycle can never start.",
        "merge \"a\" from=\"b\"; train \"b\" adapter=\"c\" ...; adapter \"c\" model=\"a\"",
        "Break the cycle shown in the message."
    }
    UnknownSweep "rora::resolve::unknown-sweep" {
        "A (sweep)\"name\" refers to no declared sweep axis.",
        "Variables must be declared at top level so the planner knows their values.",
        "rank (sweep)\"rnak\"",
        "Declare it (sweep rank 4 8 16) or fix the name."
    }
    UnusedSweep "rora::resolve::unused-sweep" {
        "A sweep axis is declared but no stage uses it.",
        "The axis would multiply the plan without changing any job.",
        "sweep seed 1 2 3  // no (sweep)\"seed\" anywhere",
        "Use it in a stage or remove it."
    }
    DuplicateSweep "rora::resolve::duplicate-sweep" {
        "A sweep axis or param is declared twice.",
        "Each variable name must have one set of values.",
        "sweep rank 4 8\\nsweep rank 16",
        "Merge the values into one declaration."
    }
    ZipLength "rora::resolve::zip-length" {
        "The axes of a zip block have different numbers of values.",
        "Zipped axes advance together, value i of each axis forming point i.",
        "zip { rank 4 8 16; alpha 8 16 }",
        "Give every axis of the zip the same number of values."
    }
    UnknownParam "rora::resolve::unknown-param" {
        "A (param)\"name\" refers to no declared param.",
        "Params are declared once at top level and used by name.",
        "lr (param)\"learning-rate\"",
        "Declare it: param learning-rate 2e-4."
    }
    UnusedParam "rora::resolve::unused-param" {
        "A param is declared but never used.",
        "It has no effect; maybe a use was misspelled.",
        "param lr 2e-4  // never referenced",
        "Use it with (param)\"lr\" or remove it."
    }
    NoModelSource "rora::semantic::no-model-source" {
        "A model stage has no source.",
        "A model comes from the hub, a local HF directory, a GGUF file, or the built-in random tiny LLaMA.",
        "model \"base\" { dtype \"bf16\" }",
        "Add one of: hub \"org/name\", path \"dir\", gguf \"file.gguf\", random layers=2 hidden=64."
    }
    ConflictingOptions "rora::semantic::conflicting-options" {
        "Options that exclude each other are both given.",
        "With both, rora could not tell which wins (two model sources; alpha and alpha-per-rank; steps and epochs).",
        "adapter \"ad\" model=\"base\" { rank 8; alpha 16; alpha-per-rank 2 }",
        "Keep one of the conflicting options."
    }
    FixedScaleNeedsValue "rora::semantic::fixed-scale-needs-value" {
        "scaling \"fixed\" has no value=.",
        "A fixed scale is independent of rank and alpha, so it must be given.",
        "scaling \"fixed\"",
        "scaling \"fixed\" value=2.0"
    }
    TargetsMatchNothing "rora::semantic::targets-match-nothing" {
        "The adapter's targets select no module of the model.",
        "An adapter without modules trains nothing.",
        "targets \"q_porj\"",
        "Use projection names (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj), all-linear, or a regex that matches `model.layers.N.self_attn.q_proj`-style paths."
    }
    InvalidRegex "rora::semantic::invalid-regex" {
        "A regular expression does not compile.",
        "Target and module patterns are Rust regexes matched against module paths.",
        "target-regex \"q_proj(\"",
        "Fix the regex syntax (see the regex crate's documentation)."
    }
    RankTooLarge "rora::semantic::rank-too-large" {
        "An adapter rank is larger than a targeted layer's smaller dimension.",
        "B A has rank at most min(in, out); a larger r only wastes parameters and changes the scale.",
        "rank 128 on a model with hidden 64",
        "Use a rank <= min(in, out) of the targeted projections."
    }
    LayerOutOfRange "rora::semantic::layer-out-of-range" {
        "A layer index is not in the model.",
        "Layers are numbered 0..n_layers-1; an index past the end selects nothing.",
        "layers 0 1 40 on a 32-layer model",
        "Use indices below the model's layer count."
    }
    MissingFile "rora::semantic::missing-file" {
        "A local file, directory or glob given in the pipeline does not exist.",
        "Stages read these at run time; checking now saves a failed run. Paths resolve relative to the pipeline file.",
        "data \"cs\" { files \"../datasets/nope/*.jsonl\" }",
        "Fix the path (relative to the pipeline file's directory) or use a hub source."
    }
    LoadedAdapterOption "rora::semantic::loaded-adapter-option" {
        "An adapter stage that loads a PEFT adapter (path or hub) also gives an option of a fresh adapter.",
        "A loaded adapter's method, rank, alpha, scaling, targets, layers, dropout and patterns come from its adapter_config.json; a second value in the pipeline would either be ignored or contradict the weights.",
        "adapter \"theirs\" model=\"base\" { path \"adapters/my-lora\"; rank 16 }",
        "Remove the option. To change an adapter's settings, make a fresh adapter and train it."
    }
    BadAdapterFolder "rora::semantic::bad-adapter-folder" {
        "A PEFT adapter folder cannot be loaded: its adapter_config.json is missing, malformed or asks for something rora does not implement, or its modules do not fit the model.",
        "rora implements PEFT's LoRA family (LoRA, rsLoRA, DoRA, rank_pattern / alpha_pattern, target_modules as a list or a regex, layers_to_transform). Other peft_types, bias other than none, modules_to_save, exclude_modules, lora_bias, trainable_token_indices, layer_replication, QA-LoRA and inits that rewrite the base weights (PiSSA, OLoRA, CorDA, LoftQ, LoRA-GA) would compute something else.",
        "adapter \"theirs\" model=\"base\" { path \"adapters/ia3\" }  // peft_type IA3",
        "Load a LoRA/DoRA adapter trained on this model; convert PiSSA/OLoRA adapters to plain LoRA with PEFT first (save_pretrained with path_initial_model_for_weight_conversion)."
    }
    FreshAdapterInput "rora::semantic::fresh-adapter-input" {
        "An eval's model= names an adapter stage that makes a fresh adapter.",
        "A fresh adapter has B = 0: evaluating it gives the base model's scores, which is almost certainly not what was meant (evaluate the model stage for those).",
        "eval \"e\" model=\"ad\" { tasks \"boolq\" }  // ad is adapter \"ad\" model=\"base\" { rank 8 }",
        "Point model= at the train stage that trains the adapter, or load a trained adapter with path / hub."
    }
    DoraQuantizedMerge "rora::semantic::dora-quantized-merge" {
        "A DoRA adapter on a quantized (GGUF) base model is merged.",
        "DoRA rescales whole weight rows; merging into re-quantized weights loses the magnitude vector's precision and the merged model no longer matches the trained one.",
        "model \"base\" { gguf \"m.gguf\" }; adapter \"ad\" model=\"base\" { method \"dora\" }; ...; merge \"m\" from=\"ft\"",
        "Merge into a full-precision base (hub or path), use LoRA/RoRA, or evaluate the unmerged adapter (eval model=\"ft\")."
    }
    MergeUnmergeable "rora::semantic::merge-unmergeable" {
        "A merge takes a bottleneck adapter (series or parallel) or a prefix (prefix tuning).",
        "A bottleneck adapter puts a non-linearity between its two matrices, and a prefix is learned attention state, so no weight W' computes what W and the adapter compute together; there is nothing to merge.",
        "adapter \"ad\" model=\"base\" { method \"series\" }; train \"ft\" adapter=\"ad\" data=\"cs\"; merge \"m\" from=\"ft\"",
        "Evaluate the train stage instead: eval model=\"ft\" runs the adapter unmerged."
    }
    OptionNotForMethod "rora::semantic::option-not-for-method" {
        "An adapter option that the adapter's method does not take: a rank, alpha, scaling rule or module pattern beside a bottleneck method (series, parallel), a bottleneck beside lora/dora, an init of the other family, or a series adapter on a module it has no place on.",
        "Each method has its own knobs; an option the method ignores would be silently dropped, and the run would not be what the file says.",
        "adapter \"ad\" model=\"base\" { method \"series\"; rank 8 }",
        "Series and parallel adapters take `bottleneck <size> non-linearity=.. scale=..` and init bert or mam; lora and dora take rank, alpha, scaling and init peft or gaussian. Series adapters sit on gate_proj, up_proj or down_proj."
    }
    BadResource "rora::semantic::bad-resource" {
        "A stage's `resources` gives a memory size or a time limit rora cannot read.",
        "The Slurm executor turns them into `--mem` and `--time`; checking now saves a run that fails at submission.",
        "train \"ft\" adapter=\"ad\" data=\"cs\" { steps 100; resources mem=\"lots\" time=\"soon\" }",
        "Write memory as `64G`, `512M` or MiB (`4096`), and time as `48h`, `90m`, `1day 2h` or minutes (`90`)."
    }
    BadTemplate "rora::semantic::bad-template" {
        "A task file's template does not parse, or its `extract` is not a valid regex.",
        "Templates turn every row into prompts; a template that cannot parse would fail on the first row, after the model is loaded.",
        "task \"quiz\" { context \"Question: {{ question }\" }",
        "Fix the minijinja syntax (`{{ name }}`, `{% for c in choices %}..{% endfor %}`) or the regex at the span."
    }
    BadTaskFile "rora::semantic::bad-task-file" {
        "A task file an eval stage names has errors, or its rows cannot be found.",
        "The task file decides every prompt and metric of the stage; it is checked with the pipeline, before any model is loaded.",
        "eval \"ev\" model=\"m\" { tasks \"quiz.kdl\" }   // quiz.kdl has a bad template",
        "Run `rora check <task file>` for its diagnostics with spans, and fix them."
    }
    BatchNotDivisible "rora::semantic::batch-not-divisible" {
        "The batch size is not a multiple of the micro-batch size.",
        "Gradient accumulation runs batch/micro micro-batches per step.",
        "batch 16 micro=5",
        "Use a micro-batch that divides the batch."
    }
    PruneNeedsAmount "rora::semantic::prune-needs-amount" {
        "A prune stage says neither how much to prune nor the target size.",
        "Unstructured methods need a sparsity, n:m needs n and m, structured methods need a sparsity or a target parameter count.",
        "prune \"p\" model=\"base\" { method \"wanda\" }",
        "Add sparsity 0.5, n-m 2 4, or target-params 1300000000."
    }
    NeedsCalibration "rora::semantic::needs-calibration" {
        "A pruning method that needs activations has no calibration data.",
        "Wanda and structured pruning score weights by |W| * ||x||, which needs calibration rows.",
        "prune \"p\" model=\"base\" { method \"wanda\"; sparsity 0.5 }",
        "Add calibration data=\"cs\" rows=128."
    }
    UnknownTask "rora::semantic::unknown-task" {
        "A task is not one rora knows: not built in, and (in an eval stage) neither a task file nor a row file in `dir`.",
        "Tasks select the prompt, the answer extraction and the eval file.",
        "tasks \"bolq\"",
        "Use boolq, piqa, siqa, hellaswag, winogrande, arc-e, arc-c or obqa; in an eval stage also a task file (`tasks \"quiz.kdl\"`) or a name with `<name>.<split>.jsonl` in `dir`."
    }
    InvalidNm "rora::semantic::invalid-n-m" {
        "An n:m sparsity pattern has n >= m or n = 0.",
        "n:m keeps n weights in every group of m; n must be between 1 and m - 1.",
        "n-m 4 4",
        "Use e.g. n-m 2 4."
    }
    WarmupExceedsSteps "rora::semantic::warmup-exceeds-steps" {
        "Warmup is at least as long as the whole run.",
        "The learning rate would never reach its peak.",
        "steps 50; warmup 100",
        "Shorten warmup or train longer."
    }
    ModelConfig "rora::semantic::model-config" {
        "A local model's config.json could not be read for checking.",
        "With the config at hand rora checks ranks and layer indices against the real dimensions.",
        "path \"models/x\" where models/x/config.json is not JSON",
        "Fix or regenerate config.json."
    }
}

impl Code {
    /// Look a code up by its full name (`rora::shape::arity`) or its last segment (`arity`).
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.name() == name || c.name().rsplit("::").next() == Some(name))
    }
}

/// `rora explain <code>` text.
pub fn explain(code: Code) -> String {
    let d = code.doc();
    format!(
        "{}\n\nWhat:    {}\nWhy:     {}\nExample: {}\nFix:     {}\n",
        d.name,
        d.what,
        d.why,
        d.example.replace("\\n", "\n         "),
        d.fix
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_unique_documented_and_namespaced() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        for c in Code::ALL {
            let d = c.doc();
            assert!(
                d.name.starts_with("rora::") && d.name.matches("::").count() == 2,
                "{}",
                d.name
            );
            assert!(
                !d.what.is_empty()
                    && !d.why.is_empty()
                    && !d.example.is_empty()
                    && !d.fix.is_empty()
            );
            assert_eq!(Code::from_name(d.name), Some(*c));
        }
        assert_eq!(Code::from_name("cycle"), Some(Code::Cycle));
        assert!(explain(Code::Cycle).contains("Fix:"));
    }
}
