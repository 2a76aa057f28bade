package org.pyheart.fhirserver;

import ca.uhn.fhir.rest.server.RestfulServer;
import java.net.InetSocketAddress;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;

/**
 * Starts the HAPI FHIR JPA R4 server at {@code http://HOST:PORT/fhir}.
 *
 * <p>Usage: {@code FhirTestServer [--host HOST] [--port PORT]}; defaults come from {@code FHIR_SERVER_HOST}
 * (127.0.0.1) and {@code FHIR_SERVER_PORT} (8080). Prints one line starting with {@link #READY} once the
 * server accepts requests; exits with status 1 (after printing the cause) when it cannot start.
 */
public final class FhirTestServer {

	/** The readiness marker the Python launcher waits for. */
	public static final String READY = "PYHEART-FHIR-SERVER READY";

	private FhirTestServer() {}

	public static void main(String[] args) throws Exception {
		String host = envOr("FHIR_SERVER_HOST", "127.0.0.1");
		int port = Integer.parseInt(envOr("FHIR_SERVER_PORT", "8080"));
		for (int i = 0; i + 1 < args.length; i += 2) {
			switch (args[i]) {
				case "--host" -> host = args[i + 1];
				case "--port" -> port = Integer.parseInt(args[i + 1]);
				default -> throw new IllegalArgumentException("unknown option " + args[i]);
			}
		}
		long began = System.nanoTime();
		AnnotationConfigApplicationContext context = new AnnotationConfigApplicationContext(ServerConfig.class);
		RestfulServer fhir = context.getBean(RestfulServer.class);

		Server jetty = new Server(new InetSocketAddress(host, port));
		ServletContextHandler handler = new ServletContextHandler();
		handler.setContextPath("/");
		ServletHolder holder = new ServletHolder(fhir);
		holder.setInitOrder(1); // initialise the RestfulServer now, not on the first request
		handler.addServlet(holder, "/fhir/*");
		jetty.setHandler(handler);
		jetty.setStopAtShutdown(true);
		try {
			jetty.start();
		} catch (Exception e) {
			System.out.println("PYHEART-FHIR-SERVER FAILED " + e);
			context.close();
			System.exit(1);
		}
		Runtime.getRuntime().addShutdownHook(new Thread(context::close, "spring-shutdown"));
		long millis = (System.nanoTime() - began) / 1_000_000;
		System.out.println(READY + " http://" + host + ":" + port + "/fhir " + millis + "ms");
		System.out.flush();
		jetty.join();
	}

	private static String envOr(String name, String fallback) {
		String value = System.getenv(name);
		return value == null || value.isBlank() ? fallback : value;
	}
}
