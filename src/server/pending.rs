//! Routes of the Mastra API whose capability edgestra has not built yet. They are served — so
//! clients and `/openapi.json` see the whole route set — and answer 501 with a JSON error that
//! names the route, never a fake result. Each group moves to its own module when it is built.

use salvo::prelude::*;

use super::ApiError;

fn not_built(req: &Request, group: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "{} {} is not implemented in this edgestra build yet ({group} is planned)",
            req.method(),
            req.uri().path()
        ),
    )
}

macro_rules! pending_routes {
    ($( $name:ident $method:ident $tag:literal $path:literal ;)*) => {
        $(
            #[endpoint(tags($tag))]
            pub async fn $name(req: &mut Request) -> Result<(), ApiError> {
                Err(not_built(req, $tag))
            }
        )*

        /// Adds every pending route to `router`, static segments before parameters.
        pub fn routes(mut router: Router) -> Router {
            $( router = router.push(Router::with_path($path).$method($name)); )*
            router
        }
    };
}

pending_routes! {
    get_api_networks get "networks" "api/networks";
    get_api_networks_v_next get "vNextNetworks" "api/networks/v-next";
    get_api_networks_v_next_network_id get "vNextNetworks" "api/networks/v-next/{networkId}";
    post_api_networks_v_next_network_id_generate post "vNextNetworks" "api/networks/v-next/{networkId}/generate";
    post_api_networks_v_next_network_id_loop post "vNextNetworks" "api/networks/v-next/{networkId}/loop";
    post_api_networks_v_next_network_id_loop_stream post "vNextNetworks" "api/networks/v-next/{networkId}/loop-stream";
    post_api_networks_v_next_network_id_stream post "vNextNetworks" "api/networks/v-next/{networkId}/stream";
    get_api_networks_network_id get "networks" "api/networks/{networkId}";
    post_api_networks_network_id_generate post "networks" "api/networks/{networkId}/generate";
    post_api_networks_network_id_stream post "networks" "api/networks/{networkId}/stream";
}
