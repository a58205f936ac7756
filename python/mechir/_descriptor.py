"""proto/mechir.proto as a FileDescriptorProto in text format (generated: do not edit).

Made by python/tools/gen_descriptor.py from the descriptor set protoc writes for the .proto
(no source info); the test tests/python/test_reader.sh regenerates it and fails on a difference.
"""

FILE_DESCRIPTOR = """\
name: "mechir.proto"
package: "mechir"
message_type {
  name: "JobSpec"
  field {
    name: "format"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "format"
  }
  field {
    name: "model_path"
    number: 2
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "modelPath"
  }
  field {
    name: "model_sha256"
    number: 3
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "modelSha256"
  }
  field {
    name: "arch"
    number: 4
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "arch"
  }
  field {
    name: "architecture"
    number: 5
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "architecture"
  }
  field {
    name: "layers"
    number: 6
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "layers"
  }
  field {
    name: "heads"
    number: 7
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "heads"
  }
  field {
    name: "hidden"
    number: 8
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "hidden"
  }
  field {
    name: "vocab_hash"
    number: 9
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "vocabHash"
  }
  field {
    name: "perturbation"
    number: 10
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "perturbation"
  }
  field {
    name: "sweeps"
    number: 11
    label: LABEL_REPEATED
    type: TYPE_STRING
    json_name: "sweeps"
  }
  field {
    name: "head_list"
    number: 12
    label: LABEL_REPEATED
    type: TYPE_UINT32
    json_name: "headList"
  }
  field {
    name: "max_len"
    number: 13
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "maxLen"
  }
  field {
    name: "min_delta"
    number: 14
    label: LABEL_OPTIONAL
    type: TYPE_DOUBLE
    json_name: "minDelta"
  }
  field {
    name: "seed"
    number: 15
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "seed"
  }
  field {
    name: "software_version"
    number: 16
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "softwareVersion"
  }
  field {
    name: "position"
    number: 17
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "position"
  }
  field {
    name: "filler"
    number: 18
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "filler"
  }
  field {
    name: "stem"
    number: 19
    label: LABEL_OPTIONAL
    type: TYPE_BOOL
    json_name: "stem"
  }
  field {
    name: "max_query_len"
    number: 20
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "maxQueryLen"
  }
  field {
    name: "pooling"
    number: 21
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "pooling"
  }
  field {
    name: "cache_hooks"
    number: 22
    label: LABEL_REPEATED
    type: TYPE_STRING
    json_name: "cacheHooks"
  }
  field {
    name: "cache_dtype"
    number: 23
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "cacheDtype"
  }
  field {
    name: "inputs"
    number: 24
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "inputs"
  }
  field {
    name: "bootstrap"
    number: 25
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "bootstrap"
  }
  field {
    name: "ci_level"
    number: 26
    label: LABEL_OPTIONAL
    type: TYPE_DOUBLE
    json_name: "ciLevel"
  }
  field {
    name: "direction"
    number: 27
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "direction"
  }
  field {
    name: "select"
    number: 28
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "select"
  }
  field {
    name: "select_k"
    number: 29
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "selectK"
  }
  field {
    name: "select_per_grade"
    number: 30
    label: LABEL_OPTIONAL
    type: TYPE_BOOL
    json_name: "selectPerGrade"
  }
  field {
    name: "input_files"
    number: 31
    label: LABEL_REPEATED
    type: TYPE_MESSAGE
    type_name: ".mechir.InputFile"
    json_name: "inputFiles"
  }
  field {
    name: "method"
    number: 32
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "method"
  }
  field {
    name: "verify_top"
    number: 33
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "verifyTop"
  }
  field {
    name: "decoder_layers"
    number: 34
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "decoderLayers"
  }
  field {
    name: "max_span"
    number: 35
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "maxSpan"
  }
}
message_type {
  name: "InputFile"
  field {
    name: "name"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "name"
  }
  field {
    name: "size"
    number: 2
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "size"
  }
  field {
    name: "xxh3"
    number: 3
    label: LABEL_OPTIONAL
    type: TYPE_FIXED64
    json_name: "xxh3"
  }
  field {
    name: "not_regular"
    number: 4
    label: LABEL_OPTIONAL
    type: TYPE_BOOL
    json_name: "notRegular"
  }
}
message_type {
  name: "PairInput"
  field {
    name: "index"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "index"
  }
  field {
    name: "pair_id"
    number: 2
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "pairId"
  }
  field {
    name: "ids_baseline"
    number: 3
    label: LABEL_REPEATED
    type: TYPE_INT32
    json_name: "idsBaseline"
  }
  field {
    name: "ids_perturbed"
    number: 4
    label: LABEL_REPEATED
    type: TYPE_INT32
    json_name: "idsPerturbed"
  }
  field {
    name: "token_types"
    number: 5
    label: LABEL_REPEATED
    type: TYPE_INT32
    json_name: "tokenTypes"
  }
  field {
    name: "query_ids"
    number: 6
    label: LABEL_REPEATED
    type: TYPE_INT32
    json_name: "queryIds"
  }
  field {
    name: "roles"
    number: 7
    label: LABEL_OPTIONAL
    type: TYPE_BYTES
    json_name: "roles"
  }
  field {
    name: "qid"
    number: 8
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "qid"
  }
  field {
    name: "docno"
    number: 9
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "docno"
  }
  field {
    name: "term"
    number: 10
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "term"
  }
  field {
    name: "position"
    number: 11
    label: LABEL_OPTIONAL
    type: TYPE_INT32
    json_name: "position"
  }
  field {
    name: "relevance"
    number: 12
    label: LABEL_OPTIONAL
    type: TYPE_INT32
    json_name: "relevance"
  }
  field {
    name: "rank"
    number: 13
    label: LABEL_OPTIONAL
    type: TYPE_INT32
    json_name: "rank"
  }
  field {
    name: "alignment"
    number: 14
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "alignment"
  }
  field {
    name: "span_baseline"
    number: 15
    label: LABEL_OPTIONAL
    type: TYPE_INT32
    json_name: "spanBaseline"
  }
  field {
    name: "span_perturbed"
    number: 16
    label: LABEL_OPTIONAL
    type: TYPE_INT32
    json_name: "spanPerturbed"
  }
  field {
    name: "pair_key"
    number: 17
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "pairKey"
  }
}
message_type {
  name: "WorkUnit"
  field {
    name: "unit_id"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "unitId"
  }
  field {
    name: "pairs"
    number: 2
    label: LABEL_REPEATED
    type: TYPE_MESSAGE
    type_name: ".mechir.PairInput"
    json_name: "pairs"
  }
  field {
    name: "mode"
    number: 3
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "mode"
  }
}
message_type {
  name: "PairResult"
  field {
    name: "pair"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.PairInput"
    json_name: "pair"
  }
  field {
    name: "score_baseline"
    number: 2
    label: LABEL_OPTIONAL
    type: TYPE_DOUBLE
    json_name: "scoreBaseline"
  }
  field {
    name: "score_perturbed"
    number: 3
    label: LABEL_OPTIONAL
    type: TYPE_DOUBLE
    json_name: "scorePerturbed"
  }
  field {
    name: "skip_reason"
    number: 4
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "skipReason"
  }
  field {
    name: "error"
    number: 5
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "error"
  }
  field {
    name: "heads"
    number: 6
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "heads"
  }
  field {
    name: "heads_scores"
    number: 7
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "headsScores"
  }
  field {
    name: "blocks"
    number: 8
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "blocks"
  }
  field {
    name: "blocks_scores"
    number: 9
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "blocksScores"
  }
  field {
    name: "head_pos_z"
    number: 10
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "headPosZ"
  }
  field {
    name: "head_pos_z_scores"
    number: 11
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "headPosZScores"
  }
  field {
    name: "head_pos_pattern"
    number: 12
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "headPosPattern"
  }
  field {
    name: "head_pos_pattern_scores"
    number: 13
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "headPosPatternScores"
  }
  field {
    name: "verified_component"
    number: 14
    label: LABEL_REPEATED
    type: TYPE_SINT32
    json_name: "verifiedComponent"
  }
  field {
    name: "verified_estimate"
    number: 15
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "verifiedEstimate"
  }
  field {
    name: "verified_exact"
    number: 16
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "verifiedExact"
  }
  field {
    name: "verified_top"
    number: 17
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "verifiedTop"
  }
  field {
    name: "qkv"
    number: 18
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "qkv"
  }
  field {
    name: "qkv_scores"
    number: 19
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "qkvScores"
  }
  field {
    name: "pattern"
    number: 20
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "pattern"
  }
  field {
    name: "pattern_scores"
    number: 21
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "patternScores"
  }
  field {
    name: "resid_mid"
    number: 22
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "residMid"
  }
  field {
    name: "resid_mid_scores"
    number: 23
    label: LABEL_REPEATED
    type: TYPE_FLOAT
    json_name: "residMidScores"
  }
}
message_type {
  name: "UnitResult"
  field {
    name: "unit_id"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "unitId"
  }
  field {
    name: "rank"
    number: 2
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "rank"
  }
  field {
    name: "results"
    number: 3
    label: LABEL_REPEATED
    type: TYPE_MESSAGE
    type_name: ".mechir.PairResult"
    json_name: "results"
  }
  field {
    name: "seconds"
    number: 4
    label: LABEL_OPTIONAL
    type: TYPE_DOUBLE
    json_name: "seconds"
  }
}
message_type {
  name: "Error"
  field {
    name: "rank"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "rank"
  }
  field {
    name: "pair_id"
    number: 2
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "pairId"
  }
  field {
    name: "message"
    number: 3
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "message"
  }
}
message_type {
  name: "Stats"
  field {
    name: "n"
    number: 1
    label: LABEL_REPEATED
    type: TYPE_UINT64
    json_name: "n"
  }
  field {
    name: "mean"
    number: 2
    label: LABEL_REPEATED
    type: TYPE_DOUBLE
    json_name: "mean"
  }
  field {
    name: "m2"
    number: 3
    label: LABEL_REPEATED
    type: TYPE_DOUBLE
    json_name: "m2"
  }
}
message_type {
  name: "Estimates"
  field {
    name: "mean_of_ratios"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Stats"
    json_name: "meanOfRatios"
  }
  field {
    name: "replicates"
    number: 2
    label: LABEL_OPTIONAL
    type: TYPE_UINT32
    json_name: "replicates"
  }
  field {
    name: "num_hi"
    number: 3
    label: LABEL_REPEATED
    type: TYPE_SINT64
    json_name: "numHi"
  }
  field {
    name: "num_lo"
    number: 4
    label: LABEL_REPEATED
    type: TYPE_FIXED64
    json_name: "numLo"
  }
  field {
    name: "den_hi"
    number: 5
    label: LABEL_REPEATED
    type: TYPE_SINT64
    json_name: "denHi"
  }
  field {
    name: "den_lo"
    number: 6
    label: LABEL_REPEATED
    type: TYPE_FIXED64
    json_name: "denLo"
  }
}
message_type {
  name: "Stratum"
  field {
    name: "name"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "name"
  }
  field {
    name: "heads"
    number: 2
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "heads"
  }
  field {
    name: "blocks_by_role"
    number: 3
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "blocksByRole"
  }
  field {
    name: "pairs"
    number: 4
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "pairs"
  }
}
message_type {
  name: "CircuitMap"
  field {
    name: "format"
    number: 1
    label: LABEL_OPTIONAL
    type: TYPE_STRING
    json_name: "format"
  }
  field {
    name: "spec"
    number: 2
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.JobSpec"
    json_name: "spec"
  }
  field {
    name: "pairs_total"
    number: 3
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "pairsTotal"
  }
  field {
    name: "pairs_used"
    number: 4
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "pairsUsed"
  }
  field {
    name: "pairs_skipped"
    number: 5
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "pairsSkipped"
  }
  field {
    name: "pairs_failed"
    number: 6
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "pairsFailed"
  }
  field {
    name: "roles"
    number: 7
    label: LABEL_REPEATED
    type: TYPE_STRING
    json_name: "roles"
  }
  field {
    name: "heads"
    number: 8
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "heads"
  }
  field {
    name: "blocks_by_role"
    number: 9
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "blocksByRole"
  }
  field {
    name: "head_pos_z_by_role"
    number: 10
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "headPosZByRole"
  }
  field {
    name: "head_pos_pattern_by_role"
    number: 11
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "headPosPatternByRole"
  }
  field {
    name: "strata"
    number: 12
    label: LABEL_REPEATED
    type: TYPE_MESSAGE
    type_name: ".mechir.Stratum"
    json_name: "strata"
  }
  field {
    name: "pair_ids"
    number: 13
    label: LABEL_REPEATED
    type: TYPE_UINT64
    json_name: "pairIds"
  }
  field {
    name: "sites"
    number: 14
    label: LABEL_REPEATED
    type: TYPE_STRING
    json_name: "sites"
  }
  field {
    name: "pairs_with"
    number: 15
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "pairsWith"
  }
  field {
    name: "pairs_against"
    number: 16
    label: LABEL_OPTIONAL
    type: TYPE_UINT64
    json_name: "pairsAgainst"
  }
  field {
    name: "provenance"
    number: 17
    label: LABEL_REPEATED
    type: TYPE_STRING
    json_name: "provenance"
  }
  field {
    name: "heads_verified"
    number: 18
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "headsVerified"
  }
  field {
    name: "heads_verified_estimate"
    number: 19
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "headsVerifiedEstimate"
  }
  field {
    name: "blocks_by_role_verified"
    number: 20
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "blocksByRoleVerified"
  }
  field {
    name: "blocks_by_role_verified_estimate"
    number: 21
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "blocksByRoleVerifiedEstimate"
  }
  field {
    name: "verified_rank"
    number: 22
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Stats"
    json_name: "verifiedRank"
  }
  field {
    name: "qkv"
    number: 23
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "qkv"
  }
  field {
    name: "pattern"
    number: 24
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "pattern"
  }
  field {
    name: "resid_mid_by_role"
    number: 25
    label: LABEL_OPTIONAL
    type: TYPE_MESSAGE
    type_name: ".mechir.Estimates"
    json_name: "residMidByRole"
  }
}
syntax: "proto3"
"""
