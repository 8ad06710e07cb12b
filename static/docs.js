// Start Swagger UI (from the swagger-ui-bundle package) on this server's OpenAPI document.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    // No badge from validator.swagger.io: the page loads nothing from other sites (its CSP would refuse it).
    validatorUrl: null,
  });
});
