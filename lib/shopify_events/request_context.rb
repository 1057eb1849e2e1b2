# frozen_string_literal: true

module ShopifyEvents
  # The current Rails request, for headers: a Rack middleware (the Railtie
  # appends it to the app's stack, so it runs after ActionDispatch::RequestId)
  # keeps the request id in a fiber-local variable while the request runs.
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
        Thread.current[KEY]
      end

      # Adds `name` => the current request id to `headers` inside a request.
      def add_request_id(headers, name)
        id = Thread.current[KEY]
        headers[name] = id if id
      end
    end

    def initialize(app)
      @app = app
    end

    def call(env)
      previous = Thread.current[KEY]
      id = env[ENV_KEY]
      Thread.current[KEY] = id&.to_s
      @app.call(env)
    ensure
      Thread.current[KEY] = previous
    end
  end
end
