# frozen_string_literal: true

# Every transport that encodes natively (sysv, spool) validates the same
# way; what differs is the size limit (`too_large`: the limit and how the
# error names it).
RSpec.shared_examples "validation in emit and emit!" do
  %i[emit emit!].each do |method|
    describe method.to_s do
      def call(method, topic, payload, **options)
        ShopifyEvents.public_send(method, topic, payload, **options)
      end

      ["", ".", "..", "a" * 250, "checkout completed", "tópico", "a/b"].each do |topic|
        it "rejects the topic #{topic.inspect[0, 30]} with InvalidTopic naming it" do
          expect do
            call(method, topic, "x")
          end.to raise_error(ShopifyEvents::InvalidTopic, /#{Regexp.escape(topic[0, 20])}/)
        end
      end

      it "accepts a 249-character topic of every allowed character" do
        topic = ("a-Z_0.9" * 40)[0, 249]
        expect(call(method, topic, "x")).to be_a(String)
      end

      it "rejects a topic that is neither String nor Symbol" do
        expect { call(method, 42, "x") }.to raise_error(TypeError, /topic must be a String or Symbol, got 42/)
      end

      it "rejects keys of other types, naming the value" do
        expect { call(method, "t", "x", key: 1.5) }.to raise_error(TypeError, /key must be .* got 1.5 \(Float\)/)
        expect { call(method, "t", "x", key: [1]) }.to raise_error(TypeError, /got \[1\] \(Array\)/)
      end

      it "rejects headers that are not a Hash of String/Symbol names" do
        expect { call(method, "t", "x", headers: [%w[a b]]) }.to raise_error(TypeError, /headers must be a Hash/)
        expect { call(method, "t", "x", headers: { 1 => "b" }) }.to raise_error(TypeError, /header names must be/)
        expect { call(method, "t", "x", headers: { "a" => 1.5 }) }.to raise_error(TypeError, /header "a" must be/)
      end

      it "rejects payloads that are not String, Hash or Array" do
        expect { call(method, "t", 42) }.to raise_error(TypeError, /payload must be a String .* got 42 \(Integer\)/)
      end

      it "names an unsupported object and where it sits in the payload" do
        expect { call(method, "t", { items: [1, Object.new] }) }
          .to raise_error(TypeError, /cannot encode #<Object.*\(Object\) at payload\[:items\]\[1\]/)
      end

      it "rejects NaN and Infinity with ArgumentError naming them" do
        expect { call(method, "t", { amount: Float::NAN }) }.to raise_error(ArgumentError, /NaN at payload\[:amount\]/)
        expect { call(method, "t", [-Float::INFINITY]) }.to raise_error(ArgumentError, /-Infinity at payload\[0\]/)
      end

      it "rejects recursive structures" do
        array = [1]
        array << array
        hash = { a: 1 }
        hash[:self] = hash
        expect { call(method, "t", array) }.to raise_error(ArgumentError, /recursive: payload\[1\] contains itself/)
        expect { call(method, "t", hash) }.to raise_error(ArgumentError, /recursive/)
      end

      it "raises for very deep nesting instead of crashing" do
        deep = 10_000.times.reduce([]) { |inner, _| [inner] }
        expect { call(method, "t", deep) }.to raise_error(ArgumentError, /nests deeper than 100 levels/)
      end

      it "rejects strings inside JSON that are not valid UTF-8" do
        expect { call(method, "t", { blob: "\xFF".b }) }
          .to raise_error(ArgumentError, /payload\[:blob\] is not valid UTF-8 \(encoding ASCII-8BIT\)/)
      end

      it "raises PayloadTooLarge naming the size and the limit" do
        limit, message = too_large
        expect { call(method, "t", "x" * limit) }.to raise_error(ShopifyEvents::PayloadTooLarge, message)
        expect(sink.events).to be_empty
      end

      it "hands nothing on when it raises" do
        expect { call(method, "bad topic", "x") }.to raise_error(ShopifyEvents::InvalidTopic)
        expect { call(method, "t", { a: Object.new }) }.to raise_error(TypeError)
        expect(sink.events).to be_empty
      end
    end
  end
end

RSpec.describe "validation in emit and emit!" do
  context "with sysv and the spool off" do
    let!(:sink) { use_transport(:sysv, spool: false) }
    let(:too_large) do
      limit = ShopifyEvents::Native.message_size_limit
      [limit, /is \d+ bytes, larger than the #{limit}-byte limit .*kernel\.msgmax/]
    end

    include_examples "validation in emit and emit!"
  end

  context "with sysv and a spool" do
    let!(:sink) { use_transport(:sysv, max_event_bytes: 64 * 1024) }
    let(:too_large) do
      [64 * 1024, /larger than max_event_bytes \(65536; envelopes above kernel\.msgmax \(\d+\) go to the spool\)/]
    end

    include_examples "validation in emit and emit!"
  end

  context "with the spool transport" do
    let!(:sink) { use_transport(:spool, max_event_bytes: 64 * 1024) }
    let(:too_large) { [64 * 1024, /is \d+ bytes, larger than max_event_bytes \(65536\); send a smaller payload/] }

    include_examples "validation in emit and emit!"
  end

  it "raises PayloadTooLarge when the event fits kernel.msgmax but not the queue's capacity (spool off)" do
    key = spec_queue_key
    small = ShopifyEvents::Native::Queue.create(key, 0o600)
    small.capacity = 512
    ShopifyEvents.configure do |c|
      c.queue_key = key
      c.spool_dir = nil
    end

    expect { ShopifyEvents.emit("t", "x" * 600) }
      .to raise_error(ShopifyEvents::PayloadTooLarge, /512-byte limit set by the queue's capacity.*setup --capacity/)
  end

  it "roots every error class of the gem in ShopifyEvents::Error" do
    names = %i[ConfigurationError InvalidTopic PayloadTooLarge DecodeError TransportError QueueFull
               QueueError PermissionDenied QueueNotFound SpoolFull SpoolError]
    classes = names.map { |name| ShopifyEvents.const_get(name) }
    expect(classes).to all(be < ShopifyEvents::Error)
    expect(ShopifyEvents::Error).to be < StandardError
  end
end
