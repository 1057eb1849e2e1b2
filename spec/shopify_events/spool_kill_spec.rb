# frozen_string_literal: true

# `kill -9` of an emitting Ruby process in the middle of spooling: what the
# spool gives back is every event the process published, whole and in its
# order, and no torn record (the reader stops at the last published one;
# the record and envelope CRCs would catch a torn one).
RSpec.describe "an emitting process killed with SIGKILL mid-spool" do
  def payload(seq)
    "#{seq};#{"k" * (100 + (seq * 37 % 3000))}"
  end

  # Forks a process that configures `transport` on the sink's key and spool
  # and emits numbered events of varied sizes (its pid as the key) until
  # killed, `after` seconds after its 100th event.
  def emit_until_killed(sink, transport, after:)
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      emit_forever(sink, transport, writer)
    end
    writer.close
    reader.read(1)
    sleep after
    Process.kill("KILL", pid)
    Process.wait(pid)
    reader.close
  end

  def emit_forever(sink, transport, ready)
    ShopifyEvents.configure do |c|
      c.transport = transport
      c.queue_key = sink.key
      c.spool_dir = sink.spool_dir
    end
    seq = 0
    loop do
      ShopifyEvents.emit!("killed", payload(seq), key: Process.pid.to_s)
      ready.write("r") if seq == 100
      seq += 1
    end
  end

  # The numbers of each process's events, in the order they came, checking
  # every payload against its number.
  def numbers_by_process(events)
    events.group_by(&:key).transform_values do |list|
      list.map do |event|
        seq = Integer(event.payload[/\A\d+/], 10)
        expect(event.payload).to eq(payload(seq))
        seq
      end
    end
  end

  def spooled(sink)
    envelopes = sink.spool_envelopes(ack: false)
    expect(sink.reader.events).to be_empty # no damage reported, nothing given up
    envelopes.map { |bytes| ShopifyEvents::Event.decode(bytes) } # DecodeError on a bad CRC
  end

  it "spool transport: 5 kills leave every published event intact, in order, none torn" do
    sink = use_transport(:spool)
    5.times { |round| emit_until_killed(sink, :spool, after: 0.02 + (round * 0.03)) }

    by_process = numbers_by_process(spooled(sink))
    expect(by_process.size).to eq(5)
    by_process.each_value { |seqs| expect(seqs).to eq((0...seqs.size).to_a).and(satisfy { seqs.size > 100 }) }
  end

  it "sysv behind a full queue: 5 kills leave every event in the queue or the spool, intact, in order" do
    sink = use_transport(:sysv)
    sink.queue.capacity = 8192
    queued = []
    5.times do |round|
      emit_until_killed(sink, :sysv, after: 0.02 + (round * 0.03))
      queued.concat(drain_events(sink.queue)) # the drain took the queue: the next process starts there
    end

    from_queue = numbers_by_process(queued)
    from_spool = numbers_by_process(spooled(sink))
    expect(from_spool.size).to eq(5)
    from_spool.each do |pid, seqs|
      # The queue took the first ones until it was full, the spool the rest.
      all = from_queue.fetch(pid, []) + seqs
      expect(all).to eq((0...all.size).to_a)
      expect(seqs.size).to be > 100
    end
  end
end
