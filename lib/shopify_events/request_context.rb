# frozen_string_literal: true

module ShopifyEvents
  # The current Rails request, for headers: a Rack middleware (inserted by
  # the Railtie after ActionDispatch::RequestId) keeps the request id in a
  # fiber-local variable while the request runs.
  class RequestContext
    KEY = :shopify_events_request_id
    ENV_KEY = "action_dispatch.request_id"

    @installed = false

    class << self
      # Set by the Railtie when it inserted the middleware.
      attr_writer :installed

      def installed?
        @installed
      end

      # The current request id, or nil outside a request.
      def request_id
        Thread.current[KEY]&.first
      end

      # `{name => request id}` for the current request, or nil outside one
      # (memoized per request and name).
      def headers(name)
        current = Thread.current[KEY]
        return nil unless current

        id, cached = current
        return cached if cached&.key?(name)

        current[1] = { name => id }.freeze
      end
    end

    def initialize(app)
      @app = app
    end

    def call(env)
      previous = Thread.current[KEY]
      id = env[ENV_KEY]
      Thread.current[KEY] = id ? [id.to_s, nil] : nil
      @app.call(env)
    ensure
      Thread.current[KEY] = previous
    end
  end
end
