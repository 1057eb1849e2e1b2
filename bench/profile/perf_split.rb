# frozen_string_literal: true

# Splits a `perf record -e cpu-clock -c PERIOD --call-graph dwarf` profile of
# bench/profile/emit_loop.rb into ns of CPU time per call, per variant and
# per part of the call. cpu-clock samples the thread's own CPU time, so the
# figures are task-clock ns (time spent scheduled out is not in them, but
# sampled at the switch: shown as its own part).
#
# A sample belongs to the floor if the native Bench module entry (which
# msgsnd_floor is inlined into) is in its call chain, else to the one other
# variant that ran interleaved with it.
# Its part is given by the innermost frame that matches a rule below,
# walking from the leaf outwards; a kernel sample under libc's msgsnd is
# "msgsnd: kernel".
#
#   ruby bench/profile/perf_split.rb PERF_DATA PERIOD_NS LOOP_OUTPUT_JSONL
require "json"

FLOOR_MARKER = /bench::init::anon|msgsnd_floor/

RULES = [
  [/\A(__schedule|finish_task_switch)/, "kernel: scheduled out (other load)"],
  [/\Aasm_exc_page_fault/, "kernel: page faults"],
  [/\Aasm_(sysvec|common_interrupt)/, "kernel: interrupts"],
  [/\A__libc_msgsnd\z/, "msgsnd: libc wrapper (user)"],
  [/event::id_string|id::/, "id String (hex, allocation, GC)"],
  [/crc32c/, "CRC32C"],
  [/clock_gettime|clock::now/, "clock (vDSO)"],
  [/EventId::generate|next_random/, "id generation"],
  [/topic::check|validate_topic|from_utf8/, "topic validation"],
  [/EnvelopeWriter|envelope::/, "envelope writer"],
  [/json|Json/, "JSON encoding"],
  [/encode_event|codec::/, "argument conversion + envelope (encode_event)"],
  [/try_send|send_raw/, "send path checks (user)"],
  [/try_convert/, "receiver conversion (TypedData)"],
  [/__tls_get_addr|with_buffer|_emitter::init::anon|experiments/, "native glue (buffer, TLS, magnus)"],
  [/bench::init::anon|msgsnd_floor/, "floor loop (Rust)"],
  [/se_exp_msgsnd_only/, "msgsnd-only native method"]
].freeze

KERNEL = "[kernel.kallsyms]"
KERNEL_RULES = RULES.first(3)
USER_RULES = RULES.drop(3)

# The first rule any frame matches, walking from the leaf outwards.
def first_rule(frames, rules)
  frames.each { |sym, _| rules.each { |re, name| return name if sym.match?(re) } }
  nil
end

def kernel_part(frames)
  first_rule(frames, KERNEL_RULES) ||
    (frames.find { |_, dso| dso != KERNEL }&.first == "__libc_msgsnd" ? "msgsnd: kernel" : "kernel: other")
end

def part(frames)
  return kernel_part(frames) if frames.first[1] == KERNEL

  first_rule(frames, USER_RULES) ||
    case frames.first[1]
    when /libruby/ then "Ruby VM (dispatch, method layers; GC not under a native call)"
    when /libc\.so/ then "libc (not under a native call)"
    else "other"
    end
end

data, period, loop_out = ARGV
period = Integer(period)
calls = File.readlines(loop_out).filter_map { |l| JSON.parse(l) if l.start_with?("{") }
            .to_h { |r| [r["variant"], r["iterations"]] }
rest = calls.keys - ["floor"]
abort "perf_split: the floor and one other variant, got #{calls.keys}" if rest.size != 1

parts = Hash.new { |h, k| h[k] = Hash.new(0) }
leaves = Hash.new { |h, k| h[k] = Hash.new(0) }
kernel_msgsnd = Hash.new { |h, k| h[k] = Hash.new(0) }
frames = []
flush = lambda do
  unless frames.empty?
    syms = frames.map(&:first).join("\n")
    variant = syms.match?(FLOOR_MARKER) ? "floor" : rest.first
    name = part(frames)
    parts[variant][name] += 1
    leaf = "#{frames.first[0]} (#{File.basename(frames.first[1])})"
    leaves[variant][leaf] += 1
    kernel_msgsnd[variant][frames.first[0]] += 1 if name == "msgsnd: kernel"
  end
  frames = []
end
IO.popen(["perf", "script", "-F", "ip,sym,dso", "--no-inline", "-i", data], err: File::NULL) do |io|
  io.each_line do |line|
    if line.strip.empty?
      flush.call
    elsif (m = line.match(/\A\s+\h+ (.*) \((.*)\)\s*\z/))
      frames << [m[1], m[2]]
    end
  end
end
flush.call

per_call = ->(hash, n) { hash.sort_by { |_, c| -c }.to_h.transform_values { |c| (c * period.fdiv(n)).round(1) } }
result = parts.to_h do |variant, counts|
  n = calls.fetch(variant)
  [variant, { calls: n, samples: counts.values.sum, ns_per_call: (counts.values.sum * period.fdiv(n)).round(1),
              parts: per_call.call(counts, n),
              kernel_msgsnd_by_function: per_call.call(kernel_msgsnd[variant], n).first(30).to_h,
              top_leaves: per_call.call(leaves[variant], n).first(30).to_h }]
end
puts JSON.pretty_generate(result)
