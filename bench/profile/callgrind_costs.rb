# frozen_string_literal: true

# Reads callgrind output files (bench/profile/callgrind.sh) and prints costs
# per call of the loop body: the slope between two runs of one variant with
# different iteration counts, so set-up and one-off costs (warm-up, a GC
# that happens once) cancel out.
#
#   ruby bench/profile/callgrind_costs.rb N1:FILE1 N2:FILE2 [--json OUT]
#
# Costs are per event kind (Ir, Dr, Dw, I1mr, D1mr, D1mw, ILmr, DLmr, DLmw):
# "self" per object, source file and function (callgrind takes the file
# from the line tables, so code inlined from another file is counted under
# that file), and "inclusive" per function (self plus the calls it makes).
require "json"

# One callgrind output file: self and inclusive costs.
class CallgrindFile
  attr_reader :events, :self_costs, :inclusive, :total, :instructions

  def initialize(path)
    @names = Hash.new { |h, k| h[k] = {} }
    @self_costs = Hash.new { |h, k| h[k] = [] }
    @inclusive = Hash.new { |h, k| h[k] = [] }
    # Ir per executed instruction address, per object (for the code footprint).
    @instructions = Hash.new(0)
    @events = []
    parse(path)
  end

  private

  def name(kind, text)
    m = text.match(/\A\((\d+)\)(?: (.*))?\z/) or return text
    m[2] ? (@names[kind][m[1]] = m[2]) : @names[kind].fetch(m[1])
  end

  def add(into, key, values)
    row = into[key]
    values.each_with_index { |v, i| row[i] = (row[i] || 0) + v }
  end

  # An instruction address: absolute (0x...), relative to the last (+N, -N)
  # or the same (*).
  def position(field, last)
    case field
    when "*" then last
    when /\A0x/ then field.to_i(16)
    else last + Integer(field)
    end
  end

  def parse(path)
    @ob = @file = @fn = nil
    @addr = 0
    @call_pending = false
    File.foreach(path) { |line| parse_line(line.chomp) }
    @total = @self_costs.values.each_with_object([]) do |v, sum|
      v.each_with_index { |x, i| sum[i] = (sum[i] || 0) + x }
    end
  end

  # What each kind of line sets (callgrind's format: "ob=", "fl=", "fn=",
  # the caller-side "cfn=" and friends, "calls=", then cost lines).
  LINE_KINDS = [
    [/\Aevents: (.*)/, ->(m) { @events = m[1].split }],
    [/\Apositions: (.*)/, ->(m) { @positions = m[1].split.size }],
    [/\Aob=(.*)/, ->(m) { @ob = File.basename(name(:ob, m[1])) }],
    [/\Af[lie]=(.*)/, ->(m) { @file = name(:fl, m[1]) }],
    [/\Afn=(.*)/, ->(m) { @fn = name(:fn, m[1]) }],
    [/\Acob=(.*)/, ->(m) { name(:ob, m[1]) }],
    [/\Ac(?:fi|fl)=(.*)/, ->(m) { name(:fl, m[1]) }],
    [/\Acfn=(.*)/, ->(m) { name(:fn, m[1]) }],
    [/\Acalls=/, ->(_) { @call_pending = true }],
    [/\A(?:0x\h+|[+-]?\d+|\*)(?:\s|\z)/, ->(m) { cost(m.string) }]
  ].freeze

  def parse_line(line)
    LINE_KINDS.each do |re, action|
      m = re.match(line) or next
      return instance_exec(m, &action)
    end
  end

  # A cost line: the cost of the call announced by "calls=" (inclusive,
  # charged to the caller), or the function's own cost at one instruction.
  def cost(line)
    fields = line.split
    @addr = position(fields[0], @addr) if @positions == 2
    values = fields.drop(@positions || 1).map(&:to_i)
    add(@inclusive, [@ob, @fn], values)
    if @call_pending
      @call_pending = false
    else
      add(@self_costs, [@ob, @file, @fn], values)
      @instructions[[@ob, @addr]] += values[0] || 0
    end
  end
end

# Per-iteration slope between two runs.
def slope(first, second, short, long)
  keys = first.keys | second.keys
  keys.to_h do |k|
    a = first.fetch(k, [])
    b = second.fetch(k, [])
    width = [a.size, b.size].max
    [k, Array.new(width) { |i| ((b[i] || 0) - (a[i] || 0)).fdiv(long - short) }]
  end
end

if $PROGRAM_NAME == __FILE__
  json_out = ARGV.index("--json")&.then { |i| ARGV.slice!(i, 2).last }
  (n1, f1), (n2, f2) = ARGV.first(2).map { |a| a.split(":", 2) }.map { |n, f| [Integer(n), f] }
  a = CallgrindFile.new(f1)
  b = CallgrindFile.new(f2)
  total = Array.new(a.events.size) { |i| ((b.total[i] || 0) - (a.total[i] || 0)).fdiv(n2 - n1) }
  self_costs = slope(a.self_costs, b.self_costs, n1, n2).reject { |_, v| v.sum.abs < 0.05 }
  inclusive = slope(a.inclusive, b.inclusive, n1, n2).reject { |_, v| v.sum.abs < 0.05 }
  # Code footprint: distinct 64-byte lines holding an instruction that runs
  # at least every other call.
  hot = slope(a.instructions.transform_values { |v| [v] }, b.instructions.transform_values { |v| [v] }, n1, n2)
        .select { |_, v| v[0] >= 0.5 }.keys
  lines = hot.map { |ob, addr| [ob, addr >> 6] }.uniq
  footprint = lines.group_by(&:first).transform_values { |l| l.size * 64 }
  result = { events: a.events, total: total, code_footprint_bytes: footprint,
             self: self_costs.sort_by { |_, v| -(v[0] || 0) }.map { |k, v| [*k, v] },
             inclusive: inclusive.sort_by { |_, v| -(v[0] || 0) }.map { |k, v| [*k, v] } }
  File.write(json_out, JSON.generate(result)) if json_out
  costs = a.events.zip(total).map { |e, v| format("%s %.1f", e, v) }.join(", ")
  puts "per iteration: #{costs}; code footprint #{format("%.1f", footprint.values.sum / 1024.0)} KiB"
  puts "\nself Ir per iteration (top 40): object, file, function"
  result[:self].first(40).each do |ob, file, fn, v|
    puts format("%8.1f  %-22s %s : %s", v[0] || 0, ob[0, 22], file.to_s.sub(%r{.*/(src|library)/}, ""), fn[0, 90])
  end
end
