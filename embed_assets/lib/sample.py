"""Deterministic, synthetic GitHub repository rows for the demo, the tests and the benchmarks.

The project ships no third-party data. This module invents repositories from a vocabulary of topical
groups (web frameworks, vector databases, bioinformatics, ...): each group has its own languages,
topics, nouns, features and purposes, combined through shared templates and shared generic words, so
that rows of one group read as related, rows of different groups as different, with realistic
overlap.

Determinism: rows are produced in fixed blocks of `BLOCK_SIZE`; each block draws from
`numpy.random.default_rng([seed, block])` and a `random.Random` seeded from it, so the output
depends only on the seed (never on Python's salted `hash()`) and is the same in every process.
Blocks do not depend on `n`, so the first k rows of `generate_repositories(n)` are
`generate_repositories(k)`.

Owners and repository names come from fixed pools (built once per process, ~0.3 s), so that owners
recur and common names recur across owners, as on GitHub; `full_name` is nevertheless unique
(case-insensitively, as on GitHub) over the whole output: a set of the names produced so far, the
only
state that grows with the number of rows when streaming, turns a clash into another or a numbered
name.

Public API: `generate_repositories`, `iter_repositories`, `write_sample`, `FIELDS`, `GROUP_NAMES`.
"""

from __future__ import annotations

import csv
import functools
import gc
import json
import math
import random
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from itertools import count, islice
from operator import itemgetter
from pathlib import Path

import numpy as np

__all__ = [
    "FIELDS",
    "GROUP_NAMES",
    "SUPPORTED_SUFFIXES",
    "generate_repositories",
    "iter_repositories",
    "write_sample",
]

BLOCK_SIZE = 1024
FIELDS = (
    "full_name",
    "description",
    "language",
    "stars",
    "topics",
    "url",
    "readme",
    "created_at",
    "group",
)
SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".parquet")

DESCRIPTION_EMPTY_SHARE = 0.02
LANGUAGE_EMPTY_SHARE = 0.10
TOPIC_COUNT_WEIGHTS = (0.40, 0.08, 0.12, 0.13, 0.12, 0.08, 0.07)  # P(0 topics), ..., P(6 topics)
VOLUME_GROWTH = (
    1.6  # creation density grows as exp(VOLUME_GROWTH * t) over [start, end]: ~5x at the end
)
README_SHARE, README_SHARE_POPULAR = 0.09, 0.18  # popular: more than ~55 stars (about 9 % of rows)
ORG_SHARE = 0.3  # rows owned by an organisation (popular ones more often) rather than a user

# --------------------------------------------------------------------------------------------------
# Vocabulary. Each group: (weight, languages most-common-first, topics, things, features, purposes,
# name parts[, own description templates]). "|" separates phrases, spaces separate single tokens.
# Things are singular noun phrases ("a <adjective> <thing>"), features noun phrases ("with
# <feature>"),
# purposes fit "for <purpose>". A name part containing "-" is used only as a whole repository name.
# --------------------------------------------------------------------------------------------------
_GROUP_TABLE: dict[str, tuple] = {
    "web-frameworks": (
        5,
        "Python|JavaScript|TypeScript|Go|Ruby|PHP|Rust|Java|Elixir",
        "web-framework http rest-api backend asgi middleware api server routing webapp",
        "web framework|HTTP server|REST API framework|microframework|HTTP router|middleware "
        "library|"
        "full-stack web framework|ASGI toolkit",
        "routing|dependency injection|async request handlers|WebSocket support|OpenAPI generation|"
        "request validation|server-side rendering|hot reload|session management",
        "building REST APIs|web applications|microservices|JSON APIs|high-traffic websites|"
        "rapid prototyping of web backends",
        "web api http route serve rest gate kit express hyper router flask rails",
    ),
    "frontend-ui": (
        5,
        "TypeScript|JavaScript|Vue|Svelte|CSS|HTML",
        "react vue svelte ui-components frontend css design-system tailwindcss component-library "
        "nextjs",
        "React component library|UI kit|design system|CSS framework|frontend starter "
        "template|headless UI toolkit|"
        "state management library|form library",
        "accessible components|dark mode|theming with CSS variables|server components|tree-shaking|"
        "responsive layouts|TypeScript types|animations",
        "building dashboards|modern single-page apps|design systems|admin panels|landing pages",
        "ui react vue kit style form state view comp design theme pixel",
    ),
    "machine-learning": (
        5,
        "Python|Jupyter Notebook|C++|R|Julia|Scala",
        "machine-learning deep-learning pytorch tensorflow scikit-learn neural-network "
        "data-science "
        "gradient-boosting automl mlops",
        "machine learning library|deep learning framework|training toolkit|AutoML system|model "
        "zoo|feature store|"
        "experiment tracker|gradient boosting library",
        "distributed training|mixed-precision training|hyperparameter search|model "
        "checkpointing|GPU acceleration|"
        "explainable predictions|feature engineering pipelines|reproducible experiments",
        "training neural networks|tabular data modelling|MLOps workflows|model "
        "evaluation|time-series forecasting|"
        "fine-tuning pretrained models",
        "learn torch tensor neural train model ml deep grad boost auto fit",
    ),
    "llm-agents": (
        4,
        "Python|TypeScript|JavaScript|Go|Rust",
        "llm ai-agents langchain openai gpt chatgpt rag autonomous-agents prompt-engineering "
        "function-calling",
        "LLM agent framework|autonomous agent|prompt engineering toolkit|RAG pipeline|AI coding "
        "assistant|"
        "multi-agent orchestration framework|chatbot framework|LLM gateway",
        "tool calling|long-term memory|retrieval-augmented generation|multi-agent "
        "planning|structured outputs|"
        "streaming responses|prompt templates|evaluation harnesses",
        "building AI agents|LLM-powered applications|automating workflows with GPT models|"
        "chatting with your documents|agentic coding",
        "agent gpt llm prompt chain auto mind brain swarm pilot copilot rag",
    ),
    "vector-databases": (
        2,
        "Rust|Go|Python|C++|TypeScript|Java",
        "vector-database embeddings similarity-search ann hnsw vector-search semantic-search faiss "
        "pgvector "
        "nearest-neighbor",
        "vector database|approximate nearest neighbor index|embedding store|similarity search "
        "engine|"
        "HNSW implementation|vector search library",
        "HNSW indexing|product quantization|hybrid keyword and vector search|metadata "
        "filtering|cosine similarity|"
        "disk-based indexes|horizontal sharding|real-time upserts",
        "semantic search|storing embeddings|nearest-neighbor search at scale|recommendation "
        "retrieval|RAG applications",
        "vector vec embed ann hnsw search index knn quant simil",
    ),
    "relational-databases": (
        3,
        "Go|Rust|C|Java|C++|Python|PLpgSQL",
        "database sql postgresql mysql sqlite orm query-builder migrations relational-database "
        "distributed-database",
        "SQL database|ORM|query builder|database migration tool|PostgreSQL extension|SQLite "
        "wrapper|"
        "distributed SQL engine|connection pooler",
        "ACID transactions|schema migrations|connection pooling|query planning|MVCC|logical "
        "replication|"
        "type-safe queries|point-in-time recovery",
        "managing PostgreSQL schemas|embedded storage|OLTP workloads|mapping objects to "
        "tables|database administration",
        "sql db pg query orm table migrate lite store base schema row",
    ),
    "kubernetes-devops": (
        3,
        "Go|Shell|Python|HCL|Smarty|Dockerfile",
        "kubernetes devops docker helm gitops ci-cd containers k8s operator deployment",
        "Kubernetes operator|Helm chart collection|GitOps controller|container orchestration "
        "tool|CI/CD pipeline|"
        "deployment automation tool|cluster management CLI|Docker image builder",
        "rolling updates|canary deployments|autoscaling|declarative configuration|secret "
        "management|"
        "multi-cluster support|self-healing workloads|drift detection",
        "deploying containers|managing Kubernetes clusters|continuous delivery|platform "
        "engineering|"
        "running workloads on bare metal",
        "kube k8s helm ship deploy ops cluster pod dock flux cargo pilot",
    ),
    "observability": (
        2,
        "Go|Rust|Python|TypeScript|Java",
        "observability monitoring metrics logging tracing opentelemetry prometheus grafana apm "
        "alerting",
        "monitoring system|metrics exporter|log aggregator|distributed tracing backend|APM "
        "agent|alerting tool|"
        "Prometheus exporter|dashboard collection",
        "OpenTelemetry support|high-cardinality metrics|log correlation|anomaly detection|alert "
        "routing|"
        "service maps|long-term storage|low-overhead instrumentation",
        "monitoring microservices|debugging production incidents|SRE teams|collecting metrics|log "
        "analysis",
        "metric trace log watch scope prom graf pulse signal beacon lens span",
    ),
    "game-engines": (
        3,
        "C++|C#|C|Rust|GDScript|Lua|JavaScript",
        "game-engine gamedev opengl vulkan 2d-game 3d-graphics ecs physics-engine godot unity",
        "game engine|2D game framework|3D renderer|entity component system|physics engine|voxel "
        "engine|"
        "pixel-art game|level editor",
        "an entity component system|physically based rendering|a Vulkan backend|hot-reloadable "
        "scripts|"
        "sprite batching|skeletal animation|networked multiplayer|deterministic physics",
        "indie game development|making 2D platformers|real-time 3D graphics|game jams|retro-style "
        "games",
        "game engine pixel sprite voxel quest forge render play level arcade dungeon",
    ),
    "cryptography": (
        2,
        "Rust|C|Go|C++|Python|Assembly",
        "cryptography encryption tls zero-knowledge post-quantum elliptic-curves aes hashing "
        "signatures security",
        "cryptography library|TLS implementation|post-quantum key exchange|hashing library|"
        "zero-knowledge proof system|encryption tool|signature scheme implementation|password "
        "hashing library",
        "constant-time operations|authenticated encryption|Ed25519 signatures|hardware "
        "acceleration|"
        "formal verification|key rotation|side-channel resistance|FIPS compliance",
        "encrypting files|secure communication|key management|verifiable computation|password "
        "storage",
        "crypt cipher hash sign key seal vault aes curve zk enc secret",
    ),
    "blockchain": (
        3,
        "Solidity|TypeScript|Rust|Go|JavaScript|Python",
        "blockchain ethereum solidity web3 smart-contracts defi nft bitcoin cryptocurrency wallet",
        "smart contract framework|Ethereum client|DeFi protocol|crypto wallet|blockchain "
        "explorer|NFT marketplace|"
        "Solidity library|layer-2 rollup",
        "gas optimisation|multisig wallets|on-chain governance|token standards|cross-chain "
        "bridges|staking rewards|"
        "transaction simulation|account abstraction",
        "building dApps|trading tokens|DeFi protocols|auditing smart contracts|running a validator "
        "node",
        "chain block eth coin token dao swap wallet ledger mint web3 defi",
    ),
    "mobile-apps": (
        4,
        "Kotlin|Swift|Dart|Java|TypeScript|Objective-C",
        "android ios flutter react-native mobile swiftui kotlin jetpack-compose mobile-app "
        "cross-platform",
        "Android app|iOS app|Flutter plugin|React Native component|SwiftUI library|mobile UI kit|"
        "Jetpack Compose sample|mobile app template",
        "offline sync|push notifications|biometric login|Material Design|dark mode|deep "
        "linking|in-app purchases|"
        "background location",
        "tracking habits|budgeting on the go|building cross-platform apps|reading news|mobile "
        "development",
        "app droid mobile swift flutter pocket tap phone ios kt compose",
    ),
    "data-visualization": (
        2,
        "JavaScript|TypeScript|Python|R|Jupyter Notebook",
        "data-visualization charts d3 plotting dashboard visualization graphs matplotlib "
        "interactive-charts plotly",
        "charting library|plotting library|dashboard builder|interactive visualization toolkit|"
        "graph visualization tool|notebook widget|heatmap renderer|BI tool",
        "interactive zooming|WebGL rendering|a declarative chart grammar|real-time streaming "
        "charts|SVG export|"
        "linked brushing|large dataset support|themeable charts",
        "exploratory data analysis|building dashboards|visualizing time series|scientific "
        "figures|business reporting",
        "chart plot viz graph dash scope lens canvas vis sight",
    ),
    "compilers": (
        2,
        "Rust|C++|C|OCaml|Haskell|Go|Zig",
        "compiler llvm parser code-generation interpreter jit webassembly static-analysis ast "
        "optimization",
        "compiler|JIT compiler|parser generator|LLVM backend|WebAssembly runtime|bytecode "
        "interpreter|"
        "static analyzer|transpiler",
        "SSA-based optimisations|incremental compilation|register allocation|error "
        "recovery|tail-call optimisation|"
        "link-time optimisation|source maps|pattern matching compilation",
        "compiling to WebAssembly|teaching compiler construction|language tooling|fast code "
        "generation|"
        "optimising numeric code",
        "cc comp llvm jit wasm parse lex ir emit opt byte",
    ),
    "programming-languages": (
        2,
        "Rust|C|Go|Zig|C++|OCaml|Haskell",
        "programming-language interpreter language functional-programming type-system dsl "
        "scripting-language repl lisp",
        "programming language|scripting language|Lisp dialect|functional language|statically typed "
        "language|"
        "toy language|embeddable scripting language|domain-specific language",
        "algebraic data types|gradual typing|a REPL|garbage collection|green threads|hygienic "
        "macros|"
        "type inference|a package manager",
        "systems programming|scripting games|teaching programming|data transformation|exploring "
        "type theory",
        "lang lisp script lox mono tiny ml lambda core syntax vm",
    ),
    "security-scanning": (
        2,
        "Go|Python|Rust|Shell|TypeScript",
        "security vulnerability-scanner sast penetration-testing devsecops cve infosec fuzzing "
        "secrets-detection "
        "bug-bounty",
        "vulnerability scanner|static application security tester|fuzzer|secret scanner|"
        "penetration testing toolkit|dependency auditor|web application scanner|container image "
        "scanner",
        "CVE matching|SBOM generation|coverage-guided fuzzing|custom detection rules|CI "
        "integration|"
        "false-positive suppression|SARIF output|subdomain enumeration",
        "finding vulnerabilities|bug bounty hunting|auditing dependencies|red team "
        "engagements|securing CI pipelines",
        "scan vuln sec audit fuzz recon hunt probe guard sniff shield",
    ),
    "static-site-generators": (
        2,
        "Go|JavaScript|TypeScript|Rust|Ruby|Python",
        "static-site-generator markdown blog jamstack hugo jekyll documentation ssg themes website",
        "static site generator|blog engine|documentation site generator|Hugo theme|Jekyll "
        "theme|Markdown renderer|"
        "Jamstack starter|personal website template",
        "Markdown with front matter|live reload|syntax highlighting|RSS feeds|incremental builds|"
        "image optimisation|i18n support|full-text search",
        "personal blogs|project documentation|portfolio sites|technical writing|publishing notes",
        "site blog press page static docs gen md hugo jekyll theme",
    ),
    "cli-tools": (
        3,
        "Rust|Go|Python|Shell|C",
        "cli command-line terminal productivity shell tui developer-tools rust-cli unix automation",
        "command-line tool|TUI application|shell utility|grep replacement|file manager|task "
        "runner|CLI framework|"
        "dotfile manager",
        "fuzzy finding|colored output|shell completions|parallel execution|git "
        "integration|interactive prompts|"
        "JSON output|plugin support",
        "searching code|managing files from the terminal|developer productivity|automating shell "
        "tasks|"
        "parsing command-line arguments",
        "cli cmd tool find grep fzf run task shell term box fx",
    ),
    "text-editors": (
        2,
        "Rust|C|Vim Script|Lua|TypeScript|C++|Emacs Lisp",
        "text-editor vim neovim emacs vscode editor lsp plugin syntax-highlighting ide",
        "text editor|Neovim plugin|Emacs package|VS Code extension|code editor|modal "
        "editor|language server|"
        "color scheme",
        "LSP support|tree-sitter highlighting|multiple cursors|modal editing|fuzzy file "
        "search|inline diagnostics|"
        "git blame annotations|remote editing",
        "editing code|note-taking|writing prose|configuring Neovim|pair programming",
        "vim nvim edit emacs code ed lsp ide syntax helix kak",
    ),
    "terminal-emulators": (
        1,
        "Rust|C|Go|Swift|C++|Zig",
        "terminal terminal-emulator gpu tty shell ansi tmux multiplexer console xterm",
        "terminal emulator|terminal multiplexer|GPU-accelerated terminal|shell prompt|terminal "
        "font|pty library|"
        "terminal color theme|SSH client",
        "GPU rendering|ligature support|true color|split panes|scrollback search|sixel "
        "images|session persistence|"
        "Unicode grapheme handling",
        "working in the terminal|remote sessions|developer workflows|tiling terminal workflows",
        "term tty shell console pty mux tab prompt ansi glyph",
    ),
    "networking": (
        2,
        "Go|Rust|C|C++|Python",
        "networking tcp udp proxy vpn dns http2 quic load-balancer wireguard",
        "reverse proxy|VPN client|DNS server|load balancer|packet capture tool|QUIC "
        "implementation|network scanner|"
        "SOCKS5 proxy",
        "zero-copy I/O|TLS termination|HTTP/3 support|connection multiplexing|traffic shaping|NAT "
        "traversal|"
        "eBPF filtering|IPv6 support",
        "tunneling traffic|service discovery|home networks|high-throughput packet "
        "processing|debugging network issues",
        "net proxy dns tunnel mesh packet sock route wire quic link hop",
    ),
    "embedded-iot": (
        2,
        "C|C++|Rust|Python|Assembly",
        "embedded iot arduino esp32 raspberry-pi microcontroller firmware rtos stm32 mqtt",
        "firmware|RTOS|Arduino library|ESP32 project|sensor driver|bootloader|embedded HAL|IoT "
        "gateway",
        "low-power sleep modes|over-the-air updates|MQTT telemetry|DMA transfers|interrupt-driven "
        "I/O|"
        "Bluetooth Low Energy|real-time scheduling|watchdog timers",
        "microcontrollers|weather stations|sensor networks|wearable devices|industrial monitoring",
        "esp arduino pico mcu fw stm sensor iot node board chip",
    ),
    "robotics": (
        1,
        "C++|Python|C|Rust|CMake",
        "robotics ros ros2 slam motion-planning autonomous-vehicles drones lidar control-systems "
        "simulation",
        "ROS package|SLAM system|motion planner|robot simulator|drone autopilot|robot arm "
        "controller|"
        "localization library|path planning library",
        "lidar odometry|inverse kinematics|sensor fusion|model predictive control|obstacle "
        "avoidance|"
        "Gazebo integration|visual servoing|multi-robot coordination",
        "autonomous navigation|mobile robots|drone racing|warehouse automation|robotics research",
        "robot ros slam nav bot arm drone motion kin pilot rover",
    ),
    "bioinformatics": (
        1,
        "Python|R|C++|Nextflow|Perl|Julia|Rust",
        "bioinformatics genomics sequencing rna-seq single-cell proteomics phylogenetics ngs "
        "variant-calling biology",
        "bioinformatics pipeline|sequence aligner|variant caller|single-cell analysis "
        "toolkit|genome assembler|"
        "protein structure predictor|phylogenetics tool|Nextflow workflow",
        "FASTQ quality control|multithreaded alignment|BAM file parsing|differential expression "
        "analysis|"
        "batch correction|reproducible workflows|GPU-accelerated alignment|k-mer counting",
        "RNA-seq analysis|genome assembly|metagenomics|clinical genomics|protein analysis",
        "seq gene bio genome align bam cell rna dna prot phylo",
    ),
    "finance-trading": (
        2,
        "Python|C++|Rust|TypeScript|Java|Jupyter Notebook",
        "trading algorithmic-trading finance quantitative-finance backtesting stock-market "
        "cryptocurrency "
        "portfolio fintech options",
        "backtesting framework|trading bot|portfolio optimiser|market data feed handler|order book "
        "simulator|"
        "options pricing library|quant research toolkit|expense tracker",
        "vectorised backtests|live broker integrations|risk metrics|limit order book replay|"
        "walk-forward optimisation|Greeks calculation|tick data storage|paper trading",
        "algorithmic trading|quantitative research|personal finance|portfolio "
        "management|high-frequency trading",
        "trade quant alpha stock fin market tick order ledger fund bull",
    ),
    "scientific-computing": (
        2,
        "Python|Julia|C++|Fortran|C|Jupyter Notebook",
        "scientific-computing numerical-methods hpc simulation linear-algebra physics ode-solver "
        "finite-element "
        "numpy gpu-computing",
        "numerical library|ODE solver|finite element solver|linear algebra library|molecular "
        "dynamics engine|"
        "HPC framework|symbolic math library|climate model",
        "sparse matrix support|automatic differentiation|MPI parallelism|adaptive time "
        "stepping|GPU kernels|"
        "arbitrary precision arithmetic|mesh refinement|BLAS bindings",
        "physics simulations|computational fluid dynamics|numerical optimisation|research "
        "computing|solving PDEs",
        "num sci sim solve mesh ode math linalg flux lattice field",
    ),
    "computer-vision": (
        3,
        "Python|C++|Jupyter Notebook|CUDA",
        "computer-vision object-detection image-segmentation opencv yolo pose-estimation "
        "deep-learning tracking "
        "ocr 3d-reconstruction",
        "object detector|image segmentation model|pose estimation library|OCR engine|multi-object "
        "tracker|"
        "3D reconstruction pipeline|face recognition library|vision transformer implementation",
        "real-time inference|ONNX export|data augmentation|anchor-free detection|camera "
        "calibration|"
        "point cloud processing|TensorRT acceleration|few-shot learning",
        "object detection|autonomous driving perception|document scanning|video analytics|medical "
        "imaging",
        "vision yolo detect seg cv pose track ocr eye sight face",
    ),
    "speech": (
        1,
        "Python|C++|Jupyter Notebook|Rust",
        "speech-recognition text-to-speech asr tts voice whisper speech-synthesis audio "
        "speaker-diarization wake-word",
        "speech recognition engine|text-to-speech system|voice cloning toolkit|wake word detector|"
        "speaker diarization pipeline|voice assistant|speech translation model|audio transcription "
        "tool",
        "streaming transcription|multilingual models|voice activity detection|word-level "
        "timestamps|"
        "on-device inference|emotional prosody|speaker embeddings|noise suppression",
        "transcribing meetings|voice assistants|accessibility|podcast subtitles|offline speech "
        "recognition",
        "speech voice tts asr whisper talk say vox speak phon",
    ),
    "nlp": (
        2,
        "Python|Jupyter Notebook|Java|Rust",
        "nlp natural-language-processing transformers text-classification named-entity-recognition "
        "bert tokenizer "
        "sentiment-analysis language-model text-mining",
        "NLP library|tokenizer|named entity recognizer|text classification toolkit|sentiment "
        "analysis model|"
        "spell checker|machine translation system|topic modelling library",
        "subword tokenization|multilingual support|pretrained transformers|dependency "
        "parsing|lemmatization|"
        "zero-shot classification|entity linking|sentence embeddings",
        "text classification|information extraction|analysing social media|low-resource "
        "languages|search relevance",
        "nlp text token lang word parse bert sent ner lex corpus",
    ),
    "recommender-systems": (
        1,
        "Python|Jupyter Notebook|Scala|Java|C++",
        "recommender-system collaborative-filtering recommendation matrix-factorization "
        "personalization ranking "
        "implicit-feedback learning-to-rank ctr-prediction two-tower",
        "recommender system|collaborative filtering library|ranking model|recommendation engine|"
        "CTR prediction framework|two-tower retrieval model|bandit library|personalisation service",
        "matrix factorization|implicit feedback|session-based recommendations|negative "
        "sampling|online A/B testing|"
        "multi-armed bandits|candidate generation|offline evaluation metrics",
        "product recommendations|personalised feeds|music recommendations|news ranking|e-commerce "
        "search",
        "rec recsys rank match taste suggest feed pick filter",
    ),
    "testing-frameworks": (
        2,
        "TypeScript|JavaScript|Python|Java|Go|Rust",
        "testing unit-testing test-automation e2e-testing mocking property-based-testing tdd "
        "playwright selenium "
        "snapshot-testing",
        "testing framework|test runner|mocking library|end-to-end testing tool|property-based "
        "testing library|"
        "assertion library|load testing tool|browser automation library",
        "parallel test execution|snapshot testing|fixtures|flaky test detection|code coverage|test "
        "sharding|"
        "watch mode|fake timers",
        "unit testing|end-to-end tests|testing web apps|load testing APIs|test-driven development",
        "test spec mock assert check jest bench fake stub suite",
    ),
    "build-tools": (
        2,
        "Rust|Go|Java|Kotlin|C++|Python|JavaScript",
        "build-tool build-system bazel gradle cmake bundler monorepo make webpack caching",
        "build system|JavaScript bundler|monorepo tool|Makefile generator|remote build cache|"
        "CMake module collection|Gradle plugin|task orchestrator",
        "incremental builds|remote caching|hermetic builds|tree-shaking|parallel task graphs|code "
        "splitting|"
        "cross-compilation|dependency graph visualisation",
        "large monorepos|bundling web apps|C++ projects|reproducible builds|CI speedups",
        "build make bake pack bundle forge cargo task bolt smith zap",
    ),
    "package-managers": (
        1,
        "Rust|Go|Python|Shell|TypeScript|C",
        "package-manager dependency-management packaging version-manager npm pip nix homebrew "
        "lockfile "
        "reproducible-builds",
        "package manager|version manager|dependency resolver|virtual environment manager|package "
        "registry|"
        "lockfile tool|Nix flake|Homebrew tap",
        "deterministic lockfiles|SAT-based dependency resolution|content-addressable "
        "storage|parallel downloads|"
        "workspace support|offline installs|signature verification|multiple runtime versions",
        "managing dependencies|installing developer tools|Python projects|reproducible "
        "environments|private registries",
        "pkg pack dep get install env ver brew nix pip lock",
    ),
    "operating-systems": (
        1,
        "C|Rust|Assembly|C++|Zig",
        "operating-system kernel osdev x86-64 riscv bootloader hypervisor microkernel unix "
        "linux-kernel",
        "hobby operating system|microkernel|Linux kernel "
        "module|bootloader|hypervisor|unikernel|x86 kernel|RISC-V OS",
        "preemptive multitasking|virtual memory|a custom filesystem|SMP support|userspace "
        "drivers|ELF loading|"
        "POSIX compatibility|capability-based security",
        "learning OS development|embedded systems|virtualization|running on bare metal|systems "
        "research",
        "os kernel boot hyper unix nix core sys micro vm kern",
    ),
    "browser-extensions": (
        2,
        "JavaScript|TypeScript|HTML|CSS",
        "browser-extension chrome-extension firefox-addon webextension privacy adblock "
        "productivity userscript "
        "tabs bookmarks",
        "browser extension|Chrome extension|Firefox add-on|userscript|ad blocker|tab "
        "manager|bookmark manager|"
        "reading mode extension",
        "tracker blocking|tab grouping|keyboard shortcuts|dark mode for every site|cross-device "
        "sync|"
        "page annotations|cookie banner removal|Manifest V3 support",
        "privacy|browsing productivity|reading articles|managing tabs|customizing websites",
        "tab ext block page mark clip reader chrome fox surf",
    ),
    "awesome-lists": (
        3,
        "HTML|JavaScript|Python|Ruby|Shell",
        "awesome awesome-list list resources curated-list collection lists learning papers tools",
        "curated list|awesome list|collection of resources|reading list|list of tools|paper "
        "list|link collection|"
        "resource directory",
        "tutorials|open-source projects|research papers|books and courses|community "
        "resources|cheat sheets|"
        "conference talks|tools and libraries",
        "learning Rust|machine learning engineers|self-hosting|frontend developers|security "
        "researchers|data engineers",
        "awesome-rust awesome-python awesome-go awesome-ml awesome-selfhosted awesome-llm "
        "awesome-devops "
        "awesome-security "
        "awesome-vue awesome-react awesome-cpp awesome-gamedev awesome-privacy awesome-cli-apps "
        "awesome-nlp "
        "awesome-osint",
        "A curated list of awesome {feat} for {purpose}.|Awesome {topic}: {feat}, {feat2} and "
        "more.|"
        "A collection of {feat} and {feat2} for {purpose}.|😎 Curated {feat} for {purpose}",
    ),
    "education-tutorials": (
        4,
        "Jupyter Notebook|Python|JavaScript|Java|C++|HTML",
        "tutorial education learning course exercises interview-preparation algorithms "
        "data-structures beginner "
        "examples",
        "tutorial series|course repository|coding exercise collection|interview preparation guide|"
        "example collection|workshop|book companion repository|learning path",
        "step-by-step lessons|solved exercises|interactive notebooks|video "
        "walkthroughs|quizzes|annotated examples|"
        "project-based lessons|algorithm visualisations",
        "learning algorithms|beginners|coding interviews|university courses|self-taught developers",
        "learn tutorial course class lesson notes guide exercises examples bootcamp "
        "100-days-of-code "
        "leetcode-solutions",
        "{Feat} for {purpose}, in {lang}.|Code and notes for {purpose}.|Solutions, {feat} and "
        "{feat2} for {purpose}.|"
        "My {lang} learning journey: {feat} and {feat2}.",
    ),
    "home-automation": (
        2,
        "Python|TypeScript|JavaScript|C++|Go",
        "home-automation home-assistant smart-home zigbee mqtt iot homekit esphome automation "
        "z-wave",
        "Home Assistant integration|smart home hub|Zigbee bridge|home automation dashboard|HomeKit "
        "bridge|"
        "thermostat controller|energy monitor|smart lighting controller",
        "local control|Zigbee device support|automation rules|presence detection|energy "
        "dashboards|voice control|"
        "MQTT discovery|scene scheduling",
        "smart homes|controlling lights|home energy management|DIY home automation|monitoring your "
        "house",
        "home hass smart zigbee house hub light thermo nest ha",
    ),
    "audio-music": (
        2,
        "C++|Python|Rust|JavaScript|TypeScript|C",
        "audio music dsp synthesizer midi audio-plugin vst music-player sound daw",
        "synthesizer|audio plugin|music player|DAW|MIDI library|DSP library|music notation "
        "tool|audio visualizer",
        "low-latency audio|VST3 support|MIDI mapping|wavetable synthesis|audio effects "
        "chains|gapless playback|"
        "spectrum analysis|live coding",
        "music production|live performance|playing your music library|sound design|audio analysis",
        "audio synth midi sound tune wave beat music dsp tone amp",
    ),
    "image-processing": (
        2,
        "Python|C++|Rust|C|JavaScript|Go",
        "image-processing image imaging compression photo resize filters webp png hdr",
        "image processing library|image optimizer|photo editor|image format decoder|thumbnail "
        "service|"
        "raw photo processor|image resizing library|HDR toolkit",
        "SIMD-accelerated resizing|lossless compression|color management|EXIF metadata handling|"
        "WebP and AVIF support|non-destructive editing|batch processing|tone mapping",
        "optimizing images for the web|photography workflows|generating thumbnails|image "
        "conversion|"
        "pixel-level editing",
        "img image photo pix pic resize thumb raw lens tone",
    ),
    "geospatial-maps": (
        2,
        "JavaScript|Python|TypeScript|C++|Java|Go",
        "gis maps geospatial openstreetmap leaflet mapbox routing gps vector-tiles geojson",
        "map library|GIS toolkit|routing engine|vector tile server|geocoder|GPS track analyzer|"
        "OpenStreetMap editor|spatial index",
        "vector tiles|offline maps|turn-by-turn routing|GeoJSON support|coordinate "
        "reprojection|spatial joins|"
        "3D terrain|isochrone calculation",
        "web mapping|spatial analysis|navigation apps|hiking and cycling|urban planning",
        "map geo gis tile osm route gps carto atlas terra",
    ),
    "chat-messaging": (
        2,
        "TypeScript|Go|JavaScript|Kotlin|Rust|Python|Elixir",
        "chat messaging matrix xmpp websocket discord-bot telegram-bot slack end-to-end-encryption "
        "realtime",
        "chat server|messaging app|Discord bot|Telegram bot|Matrix client|Slack integration|chat "
        "widget|"
        "real-time messaging backend",
        "end-to-end encryption|message threading|voice channels|presence "
        "indicators|federation|read receipts|"
        "slash commands|message search",
        "team communication|community servers|customer support chat|private messaging|moderating "
        "communities",
        "chat talk msg bot matrix tele slack chirp relay echo buzz",
    ),
    "email": (
        1,
        "Go|Python|Rust|TypeScript|PHP|Java",
        "email smtp imap mail newsletter email-marketing mailserver spam-filter email-templates "
        "dkim",
        "mail server|email client|SMTP library|newsletter platform|spam filter|email template "
        "engine|"
        "disposable email service|IMAP sync tool",
        "DKIM signing|IMAP IDLE|HTML email templates|bounce handling|spam scoring|attachment "
        "parsing|OAuth2 login|"
        "deliverability reports",
        "sending transactional email|self-hosted mail|newsletters|inbox zero|email automation",
        "mail smtp imap inbox post letter send box envelope",
    ),
    "cms": (
        2,
        "PHP|JavaScript|TypeScript|Python|Ruby|C#",
        "cms headless-cms content-management wordpress blog admin-panel graphql strapi website "
        "jamstack",
        "headless CMS|content management system|WordPress plugin|admin panel|page builder|blogging "
        "platform|"
        "wiki engine|knowledge base",
        "a visual editor|content versioning|role-based permissions|a GraphQL API|multi-language "
        "content|"
        "a media library|custom content types|scheduled publishing",
        "marketing websites|publishing content|editorial teams|documentation portals|agency "
        "projects",
        "cms press content page wiki admin publish editor craft site",
    ),
    "e-commerce": (
        2,
        "PHP|TypeScript|JavaScript|Python|Ruby|Java",
        "ecommerce shopify online-store shopping-cart payments headless-commerce marketplace "
        "stripe checkout inventory",
        "e-commerce platform|shopping cart|Shopify app|payment gateway integration|storefront "
        "template|"
        "inventory system|marketplace platform|POS system",
        "Stripe payments|multi-currency pricing|inventory tracking|discount rules|product search|"
        "abandoned cart recovery|tax calculation|order fulfilment",
        "online stores|selling digital products|small businesses|headless commerce|marketplaces",
        "shop store cart commerce pay checkout market sell order merch",
    ),
    "authentication": (
        2,
        "Go|TypeScript|Java|Python|Rust|C#",
        "authentication oauth2 openid-connect jwt sso identity authorization saml passkeys mfa",
        "identity provider|OAuth2 server|authentication library|SSO gateway|JWT "
        "library|authorization engine|"
        "passwordless login service|access management platform",
        "OpenID Connect|passkeys and WebAuthn|multi-factor authentication|role-based access "
        "control|"
        "session management|SAML federation|fine-grained permissions|social login",
        "securing APIs|single sign-on|user management|zero-trust access|SaaS applications",
        "auth id login oauth jwt pass sso key gate perm",
    ),
    "data-engineering": (
        2,
        "Python|Scala|Java|Go|Rust",
        "data-engineering etl data-pipeline airflow spark dbt data-warehouse orchestration "
        "data-quality lakehouse",
        "ETL framework|data pipeline orchestrator|dbt package|data quality tool|change data "
        "capture connector|"
        "data catalog|lakehouse table format|Spark connector",
        "incremental loads|schema evolution|data lineage|backfills|partitioned tables|data "
        "contracts|"
        "column-level validation|streaming ingestion",
        "building data pipelines|analytics engineering|data warehousing|ELT workflows|data lakes",
        "etl pipe flow lake dag data ingest sync stream warehouse",
    ),
    "dotfiles": (
        2,
        "Shell|Lua|Vim Script|Nix|Emacs Lisp",
        "dotfiles zsh neovim config bash tmux macos linux nixos setup",
        "dotfiles repository|shell configuration|Neovim config|NixOS configuration|setup script|"
        "window manager config|tmux config|zsh theme",
        "one-command bootstrap|symlink management|per-machine overrides|a Homebrew bundle|"
        "a tiling window manager setup|a custom prompt|modular plugins|secret-free configs",
        "macOS setup|Linux desktops|developer workstations|reproducible machines",
        "dotfiles dots config setup rice home nvim-config nixos-config",
        "My dotfiles for {purpose}.|Personal {thing} with {feat}.|{Thing}: {feat} and {feat2}.|"
        "dotfiles ({lang}, {topic})",
    ),
    "infrastructure-as-code": (
        2,
        "HCL|Go|Python|TypeScript|Shell",
        "terraform infrastructure-as-code aws cloud pulumi ansible serverless gcp azure iac",
        "Terraform module|Pulumi program|Ansible playbook|serverless framework|cloud cost analyzer|"
        "infrastructure template|AWS CDK construct|cloud inventory tool",
        "multi-account deployments|policy as code|drift detection|cost estimation|state locking|"
        "least-privilege IAM|preview environments|automatic tagging",
        "provisioning AWS infrastructure|multi-cloud deployments|serverless applications|platform "
        "teams|"
        "cost optimisation",
        "terraform tf infra cloud aws stack lambda iac deploy provision",
    ),
    "search-engines": (
        1,
        "Rust|Java|Go|C++|Python",
        "search-engine full-text-search information-retrieval elasticsearch lucene bm25 "
        "inverted-index search "
        "indexing crawler",
        "full-text search engine|search server|web crawler|inverted index library|search UI|query "
        "parser|"
        "typo-tolerant search engine|site search service",
        "BM25 ranking|typo tolerance|faceted search|incremental indexing|phrase queries|synonym "
        "expansion|"
        "highlighting|geo search",
        "site search|log search|e-commerce search|searching documentation|building search engines",
        "search find seek index crawl query hunt lookup lucene sift",
    ),
    "message-queues": (
        1,
        "Go|Java|Rust|Python|Scala|Elixir",
        "message-queue kafka streaming pubsub event-driven rabbitmq stream-processing nats "
        "event-sourcing queue",
        "message broker|stream processing engine|Kafka client|job queue|pub/sub system|event "
        "sourcing framework|"
        "task queue|event bus",
        "exactly-once delivery|consumer groups|dead-letter queues|backpressure|message "
        "replay|delayed jobs|"
        "partitioned topics|at-least-once semantics",
        "event-driven architectures|background jobs|real-time analytics|microservice "
        "communication|log ingestion",
        "queue kafka stream bus pub event job flow broker relay",
    ),
    "productivity-notes": (
        2,
        "TypeScript|JavaScript|Rust|Dart|Python",
        "note-taking obsidian markdown productivity knowledge-management pkm todo self-hosted "
        "zettelkasten calendar",
        "note-taking app|Obsidian plugin|todo app|personal knowledge base|habit "
        "tracker|read-it-later app|"
        "time tracker|calendar app",
        "bidirectional links|offline-first sync|Markdown storage|end-to-end encrypted sync|daily "
        "notes|"
        "a graph view|kanban boards|natural-language dates",
        "personal knowledge management|getting things done|journaling|team planning|focus and time "
        "tracking",
        "note todo task pkm memo journal brain vault habit plan",
    ),
}


# --------------------------------------------------------------------------------------------------
# Shared text. Template fields: {adj} {adj2} (two different adjectives), {thing} {athing} ("a
# thing"),
# {aadjthing} ("a fast thing"), Capitalised with a capital first letter ({Thing}); {feat} {feat2}
# {feat3} (three different features), {purpose} {topic} {lang} {name} {owner} {full_name} {year};
# README sentences also {k} and {ver}; {x} is the adjective of an other-language description.
# --------------------------------------------------------------------------------------------------
_ADJECTIVES = (  # shared by all groups
    "fast|simple|lightweight|modern|minimal|tiny|extensible|production-ready|opinionated|blazing "
    "fast|zero-dependency|"
    "type-safe|cross-platform|high-performance|self-hosted|pluggable|small|experimental|robust|scalable|declarative|"
    "batteries-included|easy-to-use|portable|open-source|async|embeddable|composable|secure|friendly"
).split("|")
_DESC_TEMPLATES = (
    "{Aadjthing} for {purpose}.",
    "{Adj} {thing} written in {lang}.",
    "{Aadjthing} with {feat} and {feat2}.",
    "{Thing} for {purpose}, with {feat}.",
    "{name}: {aadjthing} for {purpose}.",
    "{Adj} and {adj2} {thing} with {feat}.",
    "Experimental {thing} exploring {feat}.",
    "{lang} library for {purpose}.",
    "{Thing} — {feat}, {feat2} and {feat3}.",
    "Yet another {thing}, but {adj}.",
    "My personal {thing} for {purpose}.",
    "{Athing} focused on {feat}, built for {purpose}.",
    "Simple {thing} in {lang} (work in progress).",
    "Toolkit for {purpose}: {feat} and {feat2} out of the box.",
    "{Adj} {thing}. Features: {feat}, {feat2}, and more.",
    "Learning project: {athing} built from scratch in {lang}.",
    "{Thing} with first-class {feat}.",
    "The {adj} {thing} for {purpose}.",
    "{Aadjthing} in pure {lang}.",
    "Fork of a popular {thing} with {feat}.",
)
_INTL_TEMPLATES = (  # (template, adjectives for {x})
    ("一个{x}的 {thing}，支持 {feat}。", "简单|轻量级|高性能|开源|易用|现代化"),
    ("基于 {lang} 的{x} {thing}", "轻量|高效|开源"),
    ("{lang} で書かれた{x}{thing}です。", "シンプルな|軽量な|高速な|モダンな"),
    ("{lang}로 만든 {x} {thing}", "간단한|가벼운|빠른"),
    ("Une implémentation {x} de {thing} en {lang}.", "légère|rapide|élégante|complète"),
    ("Implementación {x} de {thing} en {lang}, con {feat}.", "sencilla|rápida|ligera"),
    ("Implementação {x} de {thing} em {lang}.", "simples|rápida|leve"),
    (
        "Eine {x} {thing}-Bibliothek für {lang} – mit {feat}.",
        "schnelle|einfache|schlanke|übersichtliche",
    ),
)
_EMOJI = "🚀 ✨ ⚡ 🔥 📦 🛠️ 💡 🎉 ⭐ 🧪".split()
_LANG_EMOJI = {"Rust": "🦀", "Python": "🐍", "Go": "🐹", "Swift": "🦅"}

_README_SENTENCES = (
    "{name} is {aadjthing} for {purpose}.",
    "It provides {feat}, {feat2} and a small, well-documented API.",
    "The project started in {year} as an experiment with {feat} and grew into {aadjthing}.",
    "Unlike most alternatives, it focuses on {feat} rather than raw feature count.",
    "Installation takes a single command and works on Linux, macOS and Windows.",
    "Contributions are welcome; please open an issue before sending a large pull request.",
    "The public API follows semantic versioning, and breaking changes are listed in the changelog.",
    "In our benchmarks it is about {k} times faster than comparable {lang} implementations.",
    "Configuration lives in a single file, and every option has a sensible default.",
    "See the examples directory for complete programs that use {feat}.",
    "It is used in production by teams working on {purpose}.",
    "The core is written in {lang} and has no runtime dependencies beyond the standard library.",
    "Support for {feat} is enabled by default and can be turned off per project.",
    "We test against the three most recent releases of {lang} on every commit.",
    "Support for {feat} landed in version {ver} after a long design discussion.",
    "If you are new to {topic}, start with the tutorial, which builds {athing} step by step.",
    "Bug reports that include a minimal reproduction are fixed fastest.",
    "The documentation covers {feat}, {feat2} and common deployment patterns.",
    "Plugins can hook into {feat} without patching the core.",
    "This repository also contains benchmarks, fuzz tests and a small demo for {purpose}.",
    "Known limitations: the support for {feat} is still experimental and may change before 1.0.",
    "Maintained by @{owner} and a small group of contributors.",
    "Compared with a typical {thing}, the codebase is deliberately {adj} and easy to read.",
    "Version {ver} added {feat} and removed several deprecated options.",
    "Most users combine it with {topic} tooling for {purpose}.",
    "A migration guide explains how to move from another {thing} in an afternoon.",
    "The roadmap includes {feat}, better error messages and more examples.",
    "Everything is released under the MIT license unless a file says otherwise.",
)
_SECTIONS = (
    "Features|Installation|Usage|Configuration|Architecture|Performance|Roadmap|Contributing|FAQ|"
    "Motivation|Design|Examples|Deployment|Acknowledgements|Benchmarks|Status|Getting started"
).split("|")
_INSTALL = {
    "Python": "pip install {name}",
    "JavaScript": "npm install {name}",
    "TypeScript": "npm install {name}",
    "Rust": "cargo add {name}",
    "Go": "go get github.com/{full_name}",
    "Ruby": "gem install {name}",
    "Dart": "flutter pub add {name}",
    "PHP": "composer require {full_name}",
}

# Owners and repository names.
_FIRST = (
    "alex ana anna ben carlos chen david diego elena emma fatima felix hana hugo igor ivan james "
    "jin julia kai "
    "kenji lars lea li lucas maria marco mei mohamed nadia nina noah olga omar paul priya raj rosa "
    "sam sara sven "
    "taro tom wei yuki zoe ahmed arjun bruno chloe"
).split()
_LAST = (
    "smith garcia muller kim wang tanaka rossi silva novak kowalski ivanov nguyen patel khan "
    "schmidt dubois "
    "jensen larsen costa santos mendes sato suzuki lee park zhang liu yamada fischer weber moreau "
    "bianchi romero "
    "lopez singh gupta hansen berg olsen petrov kaya yilmaz"
).split()
_ORG_WORDS = (
    "acme open cloud data deep quantum pixel bright nova apex blue red green iron silver polar "
    "lunar "
    "solar stack byte bit code dev hyper meta micro nano omni rapid terra vertex zen echo orbit "
    "atlas "
    "cosmic"
).split()
_ORG_SUFFIXES = (
    "labs dev hq io team org oss tech works studio systems hub inc ai project community".split()
)
_SYLLABLES = (
    "ka ra zo mi lu ve to na si qu xe dor fan gri bel vak tor lin mar sol ix ur en ob ti sa po ne "
    "ky"
).split()
_NAME_SUFFIXES = (
    "cli core js rs py go lite next kit lab demo example toolkit server sdk ui app plus pro bench "
    "utils api tools lib x 2 ng"
).split()
_LANG_AFFIX = {
    "Python": ("py{}", "{}-py", "python-{}", "{}.py", "{}_py"),
    "JavaScript": ("{}.js", "node-{}", "{}-js"),
    "TypeScript": ("{}-ts", "ts-{}", "{}.ts"),
    "Rust": ("{}-rs", "rust-{}", "{}rs"),
    "Go": ("go-{}", "{}-go", "go{}"),
    "Ruby": ("{}-rb", "ruby-{}"),
    "Lua": ("{}.nvim", "{}.lua"),
    "Vim Script": ("vim-{}", "{}.vim"),
    "Swift": ("{}Kit", "Swift{}"),
    "Kotlin": ("{}-kt", "k{}"),
    "Java": ("{}4j", "j{}"),
    "C++": ("{}pp", "lib{}"),
    "C": ("lib{}", "{}c"),
    "Dart": ("flutter_{}", "{}_dart"),
    "Elixir": ("ex_{}",),
    "PHP": ("php-{}", "laravel-{}"),
    "Haskell": ("hs-{}", "{}-hs"),
    "Julia": ("{}.jl",),
    "R": ("{}r", "r{}"),
    "Zig": ("zig-{}",),
}
_LANG_TOPIC = {
    "C++": "cpp",
    "C#": "csharp",
    "Go": "golang",
    "Jupyter Notebook": "jupyter-notebook",
    "Vim Script": "vim",
    "Emacs Lisp": "emacs-lisp",
    "Objective-C": "objective-c",
}
_SPOKEN_LANG = {
    "Jupyter Notebook": "Python",
    "Dockerfile": "Go",
    "Smarty": "Go",
    "CMake": "C++",
    "HTML": "JavaScript",
    "CSS": "JavaScript",
    "HCL": "Terraform",
    "Nextflow": "Groovy",
}  # what text calls a repo's language
_GENERIC_TOPICS = (
    "hacktoberfest open-source library tool developer-tools self-hosted awesome hobby-project"
).split()
_ORG_POOL_SIZE, _USER_POOL_SIZE, _NAME_POOL_SIZE = (
    2_000,
    30_000,
    1_000,
)  # _NAME_POOL_SIZE: per group

# --------------------------------------------------------------------------------------------------
# Machinery. The vocabulary is flattened into numpy object arrays so that a block of rows draws its
# words with index arithmetic; only names (which must be unique), topics and READMEs are assembled
# row by row. A word is kept in four forms: plain, Capitalised, with article, Capitalised with
# article.
# --------------------------------------------------------------------------------------------------


def _cap(text: str) -> str:
    first = text.split(" ", 1)[0]
    return text[0].upper() + text[1:] if first.islower() else text  # "iOS app" stays as it is


def _article(phrase: str) -> str:
    word = phrase.split(" ", 1)[0].split("-", 1)[0]
    if (
        word.isupper() and len(word) > 1 and word not in ("MIDI", "RAG", "ROS")
    ):  # an SQL, an HTTP, a JWT
        vowel = word[0] in "AEFHILMNORSX"
    else:
        vowel = (
            word[0].lower() in "aeiou"
            and not word.lower().startswith(("uni", "use", "one"))
            or word == "x86"
        )
    return ("an " if vowel else "a ") + phrase


def _forms(phrase: str) -> tuple[str, str, str, str]:
    with_article = _article(phrase)
    return phrase, _cap(phrase), with_article, _cap(with_article)


def _coprime_steps(n: int) -> list[int]:
    """Steps d with gcd(d, n) == 1: i, i+d, i+2d, ... (mod n) visits all n items before
    repeating."""
    return [d for d in range(1, n) if math.gcd(d, n) == 1] or [1]


_FIELD = re.compile(r"\{(\w+)\}")


def _compile(template: str) -> tuple[str, tuple[str, ...]]:
    """'{Thing} for {purpose}.' -> ('%s for %s.', ('Thing', 'purpose')): %-formatting is fast."""
    return _FIELD.sub("%s", template.replace("%", "%%")), tuple(_FIELD.findall(template))


class _Group:
    def __init__(self, name: str, spec: tuple) -> None:
        weight, langs, topics, things, feats, purposes, parts, *own = spec
        self.name, self.weight = name, weight
        ranked = langs.split("|")  # most common first: weight ~ 1/rank
        self.langs = [
            lang for i, lang in enumerate(ranked) for _ in range(max(1, round(12 / (i + 1))))
        ]
        self.topics, self.parts, self.purposes = topics.split(), parts.split(), purposes.split("|")
        self.things = [_forms(t) for t in things.split("|")]
        self.feats = [_forms(f) for f in feats.split("|")]
        self.templates = own[0].split("|") if own else []


class _Column:
    """One kind of per-group vocabulary, flattened over the groups."""

    def __init__(self, per_group: list[list]) -> None:
        self.counts = np.array([len(items) for items in per_group])
        self.offsets = np.cumsum(self.counts) - self.counts
        flat = [item for items in per_group for item in items]
        columns = list(zip(*flat, strict=True)) if isinstance(flat[0], tuple) else [flat]
        self.forms = [np.empty(len(flat), dtype=object) for _ in columns]
        for form, column in zip(self.forms, columns, strict=True):
            for i, item in enumerate(
                column
            ):  # item by item: numpy would turn lists into dimensions
                form[i] = item

    def draw(self, g: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Index of one item of group g[j] for each row j, from uniform numbers u."""
        return self.offsets[g] + (u * self.counts[g]).astype(np.int64)

    def draw_three(self, g: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Indices of three different items for each row: i, i+d, i+2d (mod n) with 0 < 2d < n."""
        n = self.counts[g]
        i = (rng.random(len(g)) * n).astype(np.int64)
        d = 1 + (rng.random(len(g)) * ((n - 1) // 2)).astype(np.int64)
        return [self.offsets[g] + (i + k * d) % n for k in range(3)]


_GROUPS = [_Group(name, spec) for name, spec in _GROUP_TABLE.items()]
GROUP_NAMES: tuple[str, ...] = tuple(g.name for g in _GROUPS)
_GROUP_P = np.array([g.weight for g in _GROUPS], dtype=float) / sum(g.weight for g in _GROUPS)
_ADJ = _Column([[_forms(a) for a in _ADJECTIVES]])
_THINGS, _FEATS = _Column([g.things for g in _GROUPS]), _Column([g.feats for g in _GROUPS])
_PURPOSES, _TOPICS = _Column([g.purposes for g in _GROUPS]), _Column([g.topics for g in _GROUPS])
_LANGS = _Column(
    [
        [
            (
                lang,
                _SPOKEN_LANG.get(lang, lang),
                _LANG_TOPIC.get(lang) or lang.lower().replace(" ", "-"),
            )
            for lang in g.langs
        ]
        for g in _GROUPS
    ]
)  # (language, as text calls it, as a topic)
_TOPIC_LISTS = _Column(
    [
        [
            [topics[(i + q * step) % len(topics)] for q in range(len(TOPIC_COUNT_WEIGHTS) - 1)]
            for i in range(len(topics))
            for step in _coprime_steps(len(topics))
        ]
        for topics in (g.topics for g in _GROUPS)
    ]
)  # i, i + step, ...: all different

# Descriptions: shared templates, then the other-language ones, then each group's own.
_TEMPLATES = [_compile(t) for t in _DESC_TEMPLATES] + [_compile(t) for t, _ in _INTL_TEMPLATES]
_INTL_START, _OWN_START = len(_DESC_TEMPLATES), len(_TEMPLATES)
_INTL_ADJECTIVES = [adjectives.split("|") for _, adjectives in _INTL_TEMPLATES]
_OWN = _Column([list(range(len(g.templates))) for g in _GROUPS])
_TEMPLATES += [_compile(t) for g in _GROUPS for t in g.templates]
_HAS_OWN = np.array([bool(g.templates) for g in _GROUPS])
_AFFIXED_LANGUAGES = np.array(list(_LANG_AFFIX), dtype=object)

_SENTENCES = [
    (text, itemgetter(*fields) if fields else lambda d: ())
    for text, fields in map(_compile, _README_SENTENCES)
]
# README sentences and sections follow a cycle 0, step, 2 step, ... from a random start, so that
# none
# repeats too soon; each cycle is stored long enough to slice a whole README from any start.
_SENTENCE_CYCLES = [
    [_SENTENCES[(q * step) % len(_SENTENCES)] for q in range(len(_SENTENCES) + 12 * 6)]
    for step in _coprime_steps(len(_SENTENCES))
]
_SECTION_CYCLES = [
    ["## " + _SECTIONS[(q * step) % len(_SECTIONS)] for q in range(len(_SECTIONS) + 12)]
    for step in _coprime_steps(len(_SECTIONS))
]
_README_FIELDS = (
    "lang",
    "name",
    "owner",
    "full_name",
    "year",
    "adj",
    "thing",
    "athing",
    "aadjthing",
    "feat",
    "feat2",
    "purpose",
)


def _pick(r: Callable[[], float], seq: Sequence):
    return seq[int(r() * len(seq))]


def _three(r: Callable[[], float], seq: Sequence) -> tuple:
    n = len(seq)
    i, d = int(r() * n), 1 + int(r() * ((n - 1) // 2))
    return seq[i], seq[(i + d) % n], seq[(i + 2 * d) % n]


def _brand(r: Callable[[], float]) -> str:
    return "".join([_pick(r, _SYLLABLES) for _ in range(2 + (r() < 0.4))])


def _org(r: Callable[[], float]) -> str:
    x = r()
    if x < 0.3:
        name = _pick(r, _ORG_WORDS) + _pick(r, _ORG_SUFFIXES)
    elif x < 0.55:
        name = _pick(r, _ORG_WORDS) + "-" + _pick(r, _ORG_SUFFIXES)
    elif x < 0.8:
        name = _brand(r) + ("-" + _pick(r, _ORG_SUFFIXES) if r() < 0.4 else "")
    else:
        name = _pick(r, _ORG_WORDS) + _pick(r, _ORG_WORDS)
    return name.capitalize() if r() < 0.25 else name


def _user(r: Callable[[], float]) -> str:
    x, first, last = r(), _pick(r, _FIRST), _pick(r, _LAST)
    if x < 0.22:
        return first + last
    if x < 0.38:
        return f"{first}-{last}"
    if x < 0.52:
        return first[0] + last
    if x < 0.68:
        return f"{first}{int(r() * 9990) + 10}"
    if x < 0.78:
        return first.capitalize() + last.capitalize()
    if x < 0.90:
        return _brand(r) + (str(int(r() * 99)) if r() < 0.5 else "")
    return f"{first}{last[0]}{int(r() * 99)}"


def _repo_name(r: Callable[[], float], g: _Group) -> str:
    x, p = r(), _pick(r, g.parts)
    if "-" in p:  # a whole name, e.g. awesome-rust
        return p if x < 0.6 else f"{p}-{_pick(r, _NAME_SUFFIXES)}"
    if x < 0.18:
        return p
    if x < 0.38:
        return f"{p}-{_pick(r, g.parts)}"
    if x < 0.50:
        return p + _pick(r, g.parts)
    if x < 0.64:
        return _brand(r)
    if x < 0.78:
        return f"{p}-{_pick(r, _NAME_SUFFIXES)}"
    if x < 0.86:
        return f"{_brand(r)}-{p}"
    if x < 0.93:
        return f"{p}_{_pick(r, g.parts)}"
    return p.capitalize() + _pick(r, g.parts).capitalize()


def _distinct(make: Callable[[], str], n: int) -> list[str]:
    """Up to n names from make(), different even ignoring case (GitHub's rule)."""
    names: dict[str, str] = {}
    for _ in range(3 * n):
        name = make()
        names.setdefault(name.lower(), name)
        if len(names) == n:
            break
    return list(names.values())


@functools.cache
def _pools() -> tuple[np.ndarray, np.ndarray, list[list[str]], _Column]:
    """Organisations, users and each group's repository names: fixed pools that every seed draws
    from
    (so owners recur, popular first, and common names recur across owners, as on GitHub)."""
    # str seeds are hashed with SHA-512: stable across processes and Python versions.
    r = random.Random("embed_assets.sample/pools").random
    orgs, users = (
        _distinct(lambda: _org(r), _ORG_POOL_SIZE),
        _distinct(lambda: _user(r), _USER_POOL_SIZE),
    )
    names = [_distinct(lambda g=g: _repo_name(r, g), _NAME_POOL_SIZE) for g in _GROUPS]
    return np.array(orgs, dtype=object), np.array(users, dtype=object), names, _Column(names)


def _readme(r: Callable[[], float], g: _Group, d: dict, description: str) -> str:
    """A title, the description, then 3..12 paragraphs (short READMEs more common) of 3..6
    sentences.

    `d` holds the row's words, so that the README is about the thing its description names; each
    paragraph draws other features and topic.
    """
    out = [f"# {d['name']}", description] if description else [f"# {d['name']}"]
    sentences = _pick(r, _SENTENCE_CYCLES)[int(r() * len(_SENTENCES)) :]
    sections = _pick(r, _SECTION_CYCLES)[int(r() * len(_SECTIONS)) :]
    d["k"], d["ver"] = 2 + int(r() * 19), f"{int(r() * 3)}.{int(r() * 15)}"
    used = headings = 0
    for i in range(3 + int(10 * r() ** 1.5)):
        d["topic"] = _pick(r, g.topics)
        if i:
            f1, f2, _ = _three(r, g.feats)
            d["feat"], d["feat2"] = f1[0], f2[0]
            if r() < 0.45:
                out.append(sections[headings])
                headings += 1
        k = 3 + int(r() * 4)
        out.append(" ".join([text % get(d) for text, get in sentences[used : used + k]]))
        used += k
        if i == 0 and r() < 0.5:
            command = _INSTALL.get(d["lang"], "git clone https://github.com/{full_name}")
            out.append("```sh\n" + command.format_map(d) + "\n```")
    return "\n\n".join(out)


def iter_repositories(
    seed: int = 0, start: date = date(2010, 1, 1), end: date = date(2025, 12, 31)
) -> Iterator[dict]:
    """An endless, deterministic stream of repository rows; see `generate_repositories`."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if start > end:
        raise ValueError(f"start ({start}) is after end ({end})")
    return _rows(int(seed), start, end)


def _rows(seed: int, start: date, end: date) -> Iterator[dict]:
    seen: set[str] = set()  # lower-case full names so far
    for block in count():
        yield from _block(np.random.default_rng([seed, block]), seen, start, end)


def _other_name(r: Callable[[], float], seen: set[str], owner: str, names: list[str]) -> str:
    """A name not yet taken by owner: another one of the group's, else a numbered one, as people
    do."""
    for _ in range(3):
        name = _pick(r, names)
        if f"{owner}/{name}".lower() not in seen:
            return name
    k = 2
    while f"{owner}/{name}-{k}".lower() in seen:
        k += 1
    return f"{name}-{k}"


def _block(rng: np.random.Generator, seen: set[str], start: date, end: date) -> list[dict]:
    """BLOCK_SIZE rows: drawn with numpy column by column, then assembled; `seen` keeps names
    unique."""
    size, (orgs, users, group_names, names) = BLOCK_SIZE, _pools()
    g = rng.choice(len(_GROUPS), size=size, p=_GROUP_P)
    log_stars = rng.normal(
        1.0, 2.2, size
    )  # log-normal: median 2 stars, a few above 100k per million
    stars = np.maximum(np.floor(np.exp(log_stars)) - 1, 0).astype(np.int64).tolist()
    span = (end - start).days * 86400 + 86400  # seconds from start 00:00:00 to the end of end
    t = (
        np.log1p(rng.random(size) * math.expm1(VOLUME_GROWTH)) / VOLUME_GROWTH
    )  # density ~ exp(growth * t)
    seconds = np.minimum(t * span, span - 1).astype(np.int64)
    epoch = (start - date(1970, 1, 1)).days * 86400
    created = [datetime.fromtimestamp(epoch + s, UTC) for s in seconds.tolist()]
    has_readme = rng.random(size) < np.where(log_stars > 4.0, README_SHARE_POPULAR, README_SHARE)
    no_description = rng.random(size) < DESCRIPTION_EMPTY_SHARE
    n_topics = rng.choice(len(TOPIC_COUNT_WEIGHTS), size=size, p=TOPIC_COUNT_WEIGHTS)

    popular_org = orgs[(rng.random(size) ** 1.5 * len(orgs)).astype(np.int64)]
    some_user = users[(rng.random(size) ** 1.5 * len(users)).astype(np.int64)]
    owner = np.where(rng.random(size) < ORG_SHARE, popular_org, some_user).tolist()
    name = names.forms[0][names.draw(g, rng.random(size))].tolist()
    with_affix = rng.random(size) < 0.12  # py-name, name.js, ...
    lang = _LANGS.draw(g, rng.random(size))
    language = _LANGS.forms[0][lang]
    a1, a2, _ = _ADJ.draw_three(np.zeros(size, dtype=np.int64), rng)
    thing, (f1, f2, f3) = _THINGS.draw(g, rng.random(size)), _FEATS.draw_three(g, rng)
    adj, things, feats = _ADJ.forms, _THINGS.forms, _FEATS.forms
    words = {
        "lang": _LANGS.forms[1][lang],
        "adj": adj[0][a1],
        "Adj": adj[1][a1],
        "adj2": adj[0][a2],
        "thing": things[0][thing],
        "Thing": things[1][thing],
        "athing": things[2][thing],
        "Athing": things[3][thing],
        "aadjthing": adj[2][a1] + " " + things[0][thing],
        "Aadjthing": adj[3][a1] + " " + things[0][thing],
        "feat": feats[0][f1],
        "Feat": feats[1][f1],
        "feat2": feats[0][f2],
        "feat3": feats[0][f3],
        "purpose": _PURPOSES.forms[0][_PURPOSES.draw(g, rng.random(size))],
        "topic": _TOPICS.forms[0][_TOPICS.draw(g, rng.random(size))],
        "year": 1970
        + (np.datetime64(start, "s") + seconds).astype("datetime64[Y]").astype(np.int64),
    }
    words = {key: column.tolist() for key, column in words.items()}
    x = rng.random(size)  # description template: another language, the group's own, or a shared one
    template = np.where(
        x < 0.02,
        _INTL_START + (x / 0.02 * len(_INTL_ADJECTIVES)).astype(np.int64),
        np.where(
            _HAS_OWN[g] & (x < 0.6),
            _OWN_START + _OWN.draw(g, rng.random(size)),
            (rng.random(size) * _INTL_START).astype(np.int64),
        ),
    )
    english = (template < _INTL_START) | (template >= _OWN_START)
    strip_period = np.flatnonzero(english & (rng.random(size) < 0.3)).tolist()
    emoji = np.flatnonzero(english & (rng.random(size) < 0.04)).tolist()
    topic_lists = _TOPIC_LISTS.forms[0][_TOPIC_LISTS.draw(g, rng.random(size))].tolist()
    x = rng.random(size)  # the last topic: the language for some, a generic one for a few
    with_lang_topic = np.flatnonzero((n_topics > 0) & (x < 0.3)).tolist()
    with_generic_topic = np.flatnonzero((n_topics > 0) & (x >= 0.3) & (x < 0.37)).tolist()
    languages = np.where(rng.random(size) < LANGUAGE_EMPTY_SHARE, "", language).tolist()
    lang_topic = _LANGS.forms[2][lang].tolist()
    template, n_topics, g = template.tolist(), n_topics.tolist(), g.tolist()

    r = random.Random(int(rng.integers(2**63))).random  # for what is drawn row by row, in row order
    for j in np.flatnonzero(with_affix & np.isin(language, _AFFIXED_LANGUAGES)).tolist():
        name[j] = _pick(r, _LANG_AFFIX[language[j]]).format(name[j])
    full_names = [f"{o}/{n}" for o, n in zip(owner, name, strict=True)]
    for j, key in enumerate([full_name.lower() for full_name in full_names]):
        if key in seen:
            name[j] = _other_name(r, seen, owner[j], group_names[g[j]])
            full_names[j] = f"{owner[j]}/{name[j]}"
            key = full_names[j].lower()
        seen.add(key)
    words["x"] = [""] * size
    for j in np.flatnonzero(~english).tolist():
        words["x"][j] = _pick(r, _INTL_ADJECTIVES[template[j] - _INTL_START])
    words.update(name=name, owner=owner, full_name=full_names)

    columns = [(text, [words[field] for field in fields]) for text, fields in _TEMPLATES]
    descriptions = []
    for j, i in enumerate(template):
        text, values = columns[i]
        descriptions.append(text % tuple([column[j] for column in values]))
    for j in strip_period:
        if descriptions[j][-1] == ".":
            descriptions[j] = descriptions[j][:-1]
    for j in emoji:
        mark = (_LANG_EMOJI.get(words["lang"][j]) if r() < 0.4 else None) or _pick(r, _EMOJI)
        descriptions[j] = f"{mark} {descriptions[j]}" if r() < 0.5 else f"{descriptions[j]} {mark}"
    for j in np.flatnonzero(no_description).tolist():
        descriptions[j] = ""

    topics = [topic_list[:k] for topic_list, k in zip(topic_lists, n_topics, strict=True)]
    for j in with_lang_topic:
        topics[j][-1] = lang_topic[j]
        topics[j] = list(dict.fromkeys(topics[j]))
    for j in with_generic_topic:
        topics[j][-1] = _pick(r, _GENERIC_TOPICS)
        topics[j] = list(dict.fromkeys(topics[j]))

    rows = [
        {
            "full_name": full_name,
            "description": description,
            "language": language,
            "stars": stars,
            "topics": topics,
            "url": "https://github.com/" + full_name,
            "readme": "",
            "created_at": created,
            "group": GROUP_NAMES[i],
        }
        for full_name, description, language, stars, topics, created, i in zip(
            full_names, descriptions, languages, stars, topics, created, g, strict=True
        )
    ]
    for j in np.flatnonzero(has_readme).tolist():
        row_words = {key: words[key][j] for key in _README_FIELDS}
        rows[j]["readme"] = _readme(r, _GROUPS[g[j]], row_words, descriptions[j])
    return rows


def generate_repositories(
    n: int, seed: int = 0, start: date = date(2010, 1, 1), end: date = date(2025, 12, 31)
) -> list[dict]:
    """`n` synthetic GitHub repository rows: dicts with the keys in `FIELDS`.

    full_name ("owner/name", unique), description (~2 % empty), language (~10 % empty), stars
    (log-normal int >= 0), topics (list of 0..6 slugs), url, readme (~10 % non-empty, Markdown, up
    to
    several thousand characters), created_at (UTC datetime in [start, end], volume growing over
    time)
    and group (the topical group the row was generated from: ground truth for clustering).

    The same arguments give the same rows in every process, and the first k rows of
    `generate_repositories(n, seed)` are `generate_repositories(k, seed)`.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rows, collecting = iter_repositories(seed, start, end), gc.isenabled()
    # rows hold no reference cycles; collecting while a million of them pile up costs ~25 %
    gc.disable()
    try:
        return list(islice(rows, n))
    finally:
        if collecting:
            gc.enable()


def write_sample(path: str | Path, n: int, seed: int = 0) -> int:
    """Write `generate_repositories(n, seed)` to `path` as CSV, JSON Lines or Parquet by its suffix.

    CSV: a header row of `FIELDS`, topics joined with ";", created_at in ISO 8601. JSON Lines: one
    object per line, topics a list, created_at ISO 8601. Parquet: topics list<string>, created_at
    timestamp[us, UTC]. Rows are streamed, not held in memory. Returns the number of rows written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"unsupported suffix {path.suffix or '(none)'!r} for {path}: use one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}"
        )
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rows, written = islice(iter_repositories(seed), n), 0
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(FIELDS)
            for row in rows:
                row["topics"], row["created_at"] = (
                    ";".join(row["topics"]),
                    row["created_at"].isoformat(),
                )
                writer.writerow(row.values())
                written += 1
    elif suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                row["created_at"] = row["created_at"].isoformat()
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        s = pa.string()
        schema = pa.schema(
            [
                ("full_name", s),
                ("description", s),
                ("language", s),
                ("stars", pa.int64()),
                ("topics", pa.list_(s)),
                ("url", s),
                ("readme", s),
                ("created_at", pa.timestamp("us", tz="UTC")),
                ("group", s),
            ]
        )
        with pq.ParquetWriter(path, schema) as writer:
            while batch := list(islice(rows, 50_000)):
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                written += len(batch)
    return written
