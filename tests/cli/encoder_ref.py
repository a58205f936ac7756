"""An independent float64 torch reference of the BERT-family encoders mechir runs (BERT, ELECTRA,
DistilBERT, RoBERTa / XLM-R; cross-encoders and a [CLS]-pooled bi-encoder), with every
TransformerLens hook of a BERT block, so hooks can be read, overwritten and differentiated.

Written from the models' definitions (Hugging Face's modeling_bert / _electra / _distilbert /
_roberta) and TransformerLens's hook semantics, not from mechir's code:
  - embeddings: word + position (+ token type) embeddings, LayerNorm (ELECTRA: then
    embeddings_project); RoBERTa positions start at pad_token_id + 1 and skip pads;
  - post-LN blocks, the hooks in TransformerLens's order and shapes for one sequence of T tokens:
      hook_resid_pre (T, C); attn.hook_q, hook_k, hook_v (T, NH, HS);
      attn.hook_attn_scores (NH, T, T) = q k^T / sqrt(HS) (no key is padding, so none masked);
      attn.hook_pattern (NH, T, T) = softmax of the scores; attn.hook_z (T, NH, HS);
      attn.hook_result (T, NH, C) = z[:, h] W_O[:, h]^T per head, no bias;
      hook_attn_out (T, C) = sum of the heads' results + b_O; hook_resid_mid = resid_pre +
      attn_out; mlp.hook_pre (T, FF) = LN1(resid_mid) W_in^T + b_in; mlp.hook_post = act(pre);
      hook_mlp_out (T, C); hook_resid_post = LN1(resid_mid) + mlp_out;
      hook_normalized_resid_post = LN2(resid_post);
  - heads: BERT pooler (dense, tanh) + classifier; RoBERTa / ELECTRA classifier.dense (tanh /
    exact GELU) + out_proj; DistilBERT pre_classifier (ReLU) + classifier. Score = logit 0 (one
    label) or logit 1. A bi-encoder's score is query_emb . (final [CLS] row).

Encoder(model_dir).forward(ids, types, hooks={name: fn}, grad=False) -> (score, acts): each hook
fn gets the activation and returns the one to use (a patch); acts maps every hook name to its
(hooked) tensor; with grad=True, acts[name].grad is d score / d activation after
score.backward() (the total derivative through everything downstream, as autograd gives it).
The weights are read from model.safetensors by parsing its header here (json + numpy).
"""
import json
import math
import os
import struct

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """{name: float64 tensor} (BF16 widened by hand: numpy has no bfloat16)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        raw = blob[base + a:base + b]
        if meta["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[meta["dtype"]])
        out[name] = torch.from_numpy(arr.astype(np.float64).reshape(meta["shape"]))
    return out


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


ACTS = {"gelu": gelu_erf, "gelu_python": gelu_erf, "gelu_new": gelu_tanh,
        "gelu_pytorch_tanh": gelu_tanh, "relu": torch.relu}


class Encoder:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        self.cfg = cfg
        self.kind = cfg["model_type"]
        self.distil = self.kind == "distilbert"
        if self.distil:
            self.L, self.C, self.NH = cfg["n_layers"], cfg["dim"], cfg["n_heads"]
            self.FF = cfg["hidden_dim"]
            self.eps = 1e-12
            self.act = ACTS[cfg.get("activation", "gelu")]
        else:
            self.L, self.C = cfg["num_hidden_layers"], cfg["hidden_size"]
            self.NH, self.FF = cfg["num_attention_heads"], cfg["intermediate_size"]
            self.eps = cfg.get("layer_norm_eps", 1e-12)
            self.act = ACTS[cfg.get("hidden_act", "gelu")]
        self.HS = self.C // self.NH
        self.labels = cfg.get("num_labels") or len(cfg.get("id2label", {"0": 0}))
        self.roberta = self.kind in ("roberta", "xlm-roberta")
        self.pad = cfg.get("pad_token_id", 1)
        self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        prefix = {"bert": "bert.", "electra": "electra.", "roberta": "roberta.",
                  "xlm-roberta": "roberta.", "distilbert": "distilbert."}[self.kind]
        self.pre = prefix if prefix + "embeddings.word_embeddings.weight" in self.w else ""
        archs = cfg.get("architectures") or [""]
        self.bi = not archs[0].endswith("ForSequenceClassification")

    def p(self, name):
        return self.w[self.pre + name]

    def lin(self, x, name, top=False):
        """x W^T + b of a Linear named under the architecture prefix (top: without it)."""
        w = self.w[name + ".weight"] if top else self.p(name + ".weight")
        b = self.w[name + ".bias"] if top else self.p(name + ".bias")
        return x @ w.T + b

    def ln(self, x, name):
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), self.p(name + ".weight"),
                                              self.p(name + ".bias"), self.eps)

    def names(self, l):
        """HF weight names of layer l: q, k, v, o, ln1, ff1, ff2, ln2."""
        if self.distil:
            a = "transformer.layer.%d." % l
            return (a + "attention.q_lin", a + "attention.k_lin", a + "attention.v_lin",
                    a + "attention.out_lin", a + "sa_layer_norm", a + "ffn.lin1", a + "ffn.lin2",
                    a + "output_layer_norm")
        a = "encoder.layer.%d." % l
        return (a + "attention.self.query", a + "attention.self.key", a + "attention.self.value",
                a + "attention.output.dense", a + "attention.output.LayerNorm",
                a + "intermediate.dense", a + "output.dense", a + "output.LayerNorm")

    def positions(self, ids):
        if not self.roberta:
            return list(range(len(ids)))
        out, n = [], 0
        for i in ids:
            if i == self.pad:
                out.append(self.pad)
            else:
                n += 1
                out.append(self.pad + n)
        return out

    def embed(self, ids, types):
        T = len(ids)
        ids_t = torch.tensor(ids)
        x = (self.p("embeddings.word_embeddings.weight")[ids_t]
             + self.p("embeddings.position_embeddings.weight")[torch.tensor(self.positions(ids))])
        if not self.distil:
            tt = torch.tensor(types if types is not None else [0] * T)
            x = x + self.p("embeddings.token_type_embeddings.weight")[tt]
        x = self.ln(x, "embeddings.LayerNorm")
        if self.kind == "electra":
            x = self.lin(x, "embeddings_project")
        return x

    def head(self, cls):
        if self.kind == "bert":
            y = torch.tanh(self.lin(cls, "pooler.dense"))
            logits = self.lin(y, "classifier", top=True)
        elif self.distil:
            y = torch.relu(self.lin(cls, "pre_classifier", top=True))
            logits = self.lin(y, "classifier", top=True)
        else:
            y = self.lin(cls, "classifier.dense", top=True)
            y = gelu_erf(y) if self.kind == "electra" else torch.tanh(y)
            logits = self.lin(y, "classifier.out_proj", top=True)
        return logits[0] if self.labels == 1 else logits[1]

    def forward(self, ids, types=None, hooks=None, grad=False, query_emb=None):
        hooks = hooks or {}
        acts = {}
        T, NH, HS, C = len(ids), self.NH, self.HS, self.C

        def hp(name, x):
            if name in hooks:
                x = hooks[name](x)
            if grad:
                x.retain_grad()
            acts[name] = x
            return x

        x = self.embed(ids, types)
        if grad:
            x = x.clone().requires_grad_()
        x = hp("hook_full_embed", x)
        for l in range(self.L):
            b = "blocks.%d." % l
            nq, nk, nv, no, nln1, nf1, nf2, nln2 = self.names(l)
            x = hp(b + "hook_resid_pre", x)
            q = hp(b + "attn.hook_q", self.lin(x, nq).view(T, NH, HS))
            k = hp(b + "attn.hook_k", self.lin(x, nk).view(T, NH, HS))
            v = hp(b + "attn.hook_v", self.lin(x, nv).view(T, NH, HS))
            scores = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(HS)
            scores = hp(b + "attn.hook_attn_scores", scores)
            pattern = hp(b + "attn.hook_pattern", torch.softmax(scores, dim=-1))
            z = hp(b + "attn.hook_z", torch.einsum("hij,jhd->ihd", pattern, v))
            W_O = self.p(no + ".weight").view(C, NH, HS)
            result = hp(b + "attn.hook_result", torch.einsum("thd,chd->thc", z, W_O))
            attn_out = hp(b + "hook_attn_out", result.sum(1) + self.p(no + ".bias"))
            mid = hp(b + "hook_resid_mid", x + attn_out)
            h1 = self.ln(mid, nln1)
            pre = hp(b + "mlp.hook_pre", self.lin(h1, nf1))
            post = hp(b + "mlp.hook_post", self.act(pre))
            mlp_out = hp(b + "hook_mlp_out", self.lin(post, nf2))
            resid_post = hp(b + "hook_resid_post", h1 + mlp_out)
            x = hp(b + "hook_normalized_resid_post", self.ln(resid_post, nln2))
        if self.bi:
            score = torch.dot(query_emb, x[0])
        else:
            score = self.head(x[0])
        return score, acts

    def embedding(self, ids):
        """A bi-encoder's [CLS] vector of ids (the query side)."""
        _, acts = self.forward(ids, query_emb=torch.zeros(self.C))
        return acts["blocks.%d.hook_normalized_resid_post" % (self.L - 1)][0].detach()

    def token_types(self, ids, sep_id):
        """BERT-style segments: 0 up to and including the first [SEP], 1 after (all 0 for
        RoBERTa-style and DistilBERT models, which have no token types)."""
        if self.roberta or self.distil or sep_id not in ids:
            return [0] * len(ids)
        first = ids.index(sep_id)
        return [0 if t <= first else 1 for t in range(len(ids))]
