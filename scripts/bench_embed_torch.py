#!/usr/bin/env python3
"""PyTorch CPU counterpart of `model/examples/bench_embed.rs`: tokens/s of content embedding.

Same protocol: the token ids of a golden file, cycled to --n sequences, embedded in batches of
--batch in file order (or sorted by length with --sort-by-length) (right padding, attention-masked mean of the last hidden state, L2
normalised), best of --repeats. Counts real (non-padding) tokens.

    pip install torch --index-url https://download.pytorch.org/whl/cpu transformers
    python3 scripts/bench_embed_torch.py --model ~/.cache/learnrec/assets/minilm \
        --golden /work/shared/golden/all-MiniLM-L6-v2.json

--model is a Hugging Face directory; add --gguf FILE to load a GGUF file inside it (or give the
.gguf path as --model) through transformers' own dequantising loader.
"""

import argparse
import json
import os
import resource
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--golden", required=True)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--n", type=int, default=96)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sort-by-length", action="store_true", help="sort sequences by length before batching")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = p.parse_args()

    import torch
    from transformers import AutoModel

    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.golden) as f:
        items = json.load(f)["items"]
    texts = [it["ids"] for it in items]
    seqs = [texts[i % len(texts)] for i in range(args.n)]
    if args.sort_by_length:
        seqs = sorted(seqs, key=len)
    padded = sum(len(c) * max(len(s) for s in c) for c in (seqs[i : i + args.batch] for i in range(0, len(seqs), args.batch)))
    tokens = sum(len(s) for s in seqs)

    t0 = time.time()
    if args.model.endswith(".gguf"):
        model = AutoModel.from_pretrained(os.path.dirname(args.model), gguf_file=os.path.basename(args.model), torch_dtype=torch.float32)
    else:
        model = AutoModel.from_pretrained(args.model, torch_dtype=torch.float32)
    model.eval()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"loaded {type(model).__name__} in {time.time() - t0:.2f}s, max RSS {rss:.0f} MiB")

    def embed(chunk):
        n = max(len(s) for s in chunk)
        ids = torch.zeros((len(chunk), n), dtype=torch.long)
        mask = torch.zeros((len(chunk), n), dtype=torch.long)
        for i, s in enumerate(chunk):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
            return torch.nn.functional.normalize(pooled, dim=-1)

    embed(seqs[: args.batch])  # warm-up
    best = float("inf")
    for r in range(args.repeats):
        t = time.time()
        for i in range(0, len(seqs), args.batch):
            embed(seqs[i : i + args.batch])
        s = time.time() - t
        best = min(best, s)
        print(f"run {r}: {len(seqs)} sequences, {tokens} tokens in {s:.3f}s = {tokens / s:.0f} tokens/s")
    print(f"torch {torch.__version__}: best {tokens / best:.0f} tokens/s (batch {args.batch}, {100 * (padded - tokens) / max(padded, 1):.0f}% padding, threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
